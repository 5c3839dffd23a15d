"""Helpers of the tests (and, for harness.py, of the bench): no test functions, no fixtures."""
