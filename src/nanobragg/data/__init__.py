"""Data shipped with the package: the upstream ``.stol`` tables (bl831/nanoBragg, MIT licence).

``stol/`` holds water, air, ice, nanoice, shortwater and unity, byte-for-byte
copies of the tables in the upstream repository, with its licence.
"""
from pathlib import Path

#: Folder of the packaged ``.stol`` tables.
STOL_DIR = Path(__file__).resolve().parent / "stol"


def packaged_stol_names() -> list[str]:
    """Names of the packaged tables (``water``, ``air``, ...)."""
    return sorted(p.stem for p in STOL_DIR.glob("*.stol"))


def packaged_stol(name: str) -> Path | None:
    """The packaged table called ``name`` (``water`` or ``water.stol``), or None."""
    base = name[:-5] if name.endswith(".stol") else name
    if "/" in base or not base:
        return None
    path = STOL_DIR / f"{base}.stol"
    return path if path.is_file() else None
