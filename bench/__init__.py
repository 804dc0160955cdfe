"""Benchmarks: each measures one service against a raw-SQL ceiling in the same run.

Run them with `make bench` or `.venv/bin/python -m bench.collect --backend postgres`;
docs/performance.md says what each measures and holds the latest figures.
"""
