"""Benchmarks of casework on realistic data volumes (``make bench``); see bench/README.md."""
