"""Benchmark suite behind ``kmtpe bench``: tasks, samplers, the resumable runner, statistics."""
