"""Benchmarks of regsweep against the scikit-learn route (``python -m bench [--quick]``)."""
