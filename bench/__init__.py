"""Benchmark of the credit pipeline: `python -m bench [--quick]`; see bench/README.md."""
