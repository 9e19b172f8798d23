"""Benchmark scripts (run as `python benchmark/<name>.py`); their helpers are mobilenet_v3.bench.
"""
