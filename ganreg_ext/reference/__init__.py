"""Eager PyTorch references, one module per op family: readable, the truth every backend is tested against."""
