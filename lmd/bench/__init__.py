"""Benchmarks: stage-1 layout accuracy (`lmd.bench.stage1`)."""
