"""Benchmarks (``just bench``): figures and ratios against the alternatives, never assertions on time."""
