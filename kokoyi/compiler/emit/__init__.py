"""Backends: printers of kernels (kokoyi/compiler/kernel.py) as Python source."""
