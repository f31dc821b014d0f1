"""Benchmarks: `python -m benchmarks.throughput` (sampler throughput and model-FLOP utilisation)."""
