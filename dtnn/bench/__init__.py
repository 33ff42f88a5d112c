"""Benchmarks run by ``dtnn bench`` (see ``dtnn.cli.bench``)."""
