"""Benchmarks (not tests). Run with `make bench` or `python -m bench [name ...]`.

Each benchmark module defines TITLE and `run() -> str`, returning a Markdown
section that includes its same-run baseline. Results are written into
docs/BENCHMARKS.md, one section per benchmark, with the machine and the date.
"""
