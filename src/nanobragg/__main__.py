"""``python -m nanobragg``: the nanoBragg command."""
from .cli.main import console

console()
