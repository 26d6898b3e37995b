"""Helpers for running Proctor locally from Python: tests, benchmarks and scripts share them."""
