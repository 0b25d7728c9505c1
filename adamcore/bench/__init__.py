"""adamcore's benchmarks: ``python -m adamcore.bench`` (see __main__.py) and the
pytest-benchmark suite in the repository's bench/ folder share these cases."""
