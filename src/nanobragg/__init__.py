"""nanobragg: the nanoBragg diffraction simulator on PyTorch.

Drop-in for the C program's command line (``nanoBragg``), differentiable
through its Python API, vectorised and memory-bounded.
"""
__version__ = "0.1.0"
