"""Side-by-side benchmark of sharedsession and the session libraries users would otherwise pick.

Run ``python -m bench`` from the repository root (``pip install -e ".[bench]"``
and the ``wrk`` Debian package first); ``python -m bench --help`` lists the
options, ``docs/benchmarks/README.md`` explains the method. Not a test: the
smoke test in ``tests/test_bench.py`` only checks that the harness works.
"""
