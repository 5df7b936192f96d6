"""The `batch` pass: core IR + a call signature -> a kernel (see driver.py)."""
from kokoyi.compiler.batch.driver import Batcher, Unsupported, batch_function

__all__ = ["Batcher", "Unsupported", "batch_function"]
