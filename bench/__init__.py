"""Benchmarks of every trigger against a real Azurite: round trips, throughput against a floor, latency, scale.

Run `python -m bench` (see docs/benchmarks.md); figures are printed as a table and written as JSON to
bench/results/ so that runs on different commits can be compared.
"""
