"""``python -m nanobragg``: the nanoBragg command."""
from .cli.entry import console

console()
