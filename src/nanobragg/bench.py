"""``python -m nanobragg.bench``: the ``nanobragg-bench`` command (see :mod:`nanobragg.tools.bench`)."""
import sys

from nanobragg.tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
