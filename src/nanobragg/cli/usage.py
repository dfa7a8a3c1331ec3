"""Help text generated from the flag table."""
from __future__ import annotations

from .flags import FLAGS


def usage_text() -> str:
    """One line per flag: names, number of values, help."""
    lines = ["usage: nanoBragg -cell a b c al be ga | -mat A.mat  -hkl Fs.hkl | -default_F F  [options]", "options:"]
    for flag in FLAGS:
        names = " ".join(flag.names)
        args = " " + " ".join("V" for _ in flag.values) if flag.values else ""
        lines.append(f"  {names + args:<44} {flag.help}")
    return "\n".join(lines)
