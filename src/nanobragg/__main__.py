"""``python -m nanobragg``: the nanoBragg command."""
import sys

from .cli.main import main

sys.exit(main())
