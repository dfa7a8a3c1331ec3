"""``python -m nanobragg``: the nanoBragg command.

It goes through the same entry point as the installed ``nanoBragg`` script,
whose import sets the OpenMP thread policy before torch loads (see
:mod:`nanobragg.cli.entry`); nothing here may import torch before it.
"""
from .cli.entry import console

console()
