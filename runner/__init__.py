"""dlmatrix: reproduce published ImageNet errors and throughput across framework versions.

This file stays empty of imports: the in-cell probe (`runner.probe`) is imported by
old interpreters (Python 3.7) inside each environment, through this package.
"""
