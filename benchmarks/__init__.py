"""Benchmarks: the bundled model, the seed's network and ddddocr side by side, and the crawl.

``python -m benchmarks`` (or ``make benchmark``) runs every section on this machine and writes
``benchmarks/results.md`` and ``benchmarks/results.json``; ``python -m benchmarks --help`` lists
the flags that shrink it. ``python -m benchmarks.report --readme`` prints the README's
performance table from ``results.json``, so the two never disagree.
"""
