"""Measured performance of the serving path, as ratios against baselines measured in the same run.

``python -m bench`` (``make bench``) starts every server it measures on free loopback ports, drives load with
C load generators from Debian (h2load for unary gRPC, wrk for HTTP), and writes ``bench/results/<date>.json``,
``latest.md`` (the table, goals met or missed) and ``latest.png``. ``--smoke`` runs the same path at a tiny
scale (``make bench-smoke``, seconds).

Layout: ``settings`` (scale), ``procs`` (server processes, RSS, CPU), ``loadgen`` (h2load/wrk runs and their
parsing), ``payloads`` (request bodies from the real datasets), ``repo`` (the bench's own model repository,
publishing for the hot swap), ``scrape`` (Prometheus text), ``profiling`` (py-spy), ``scenarios/`` (one
module per scenario of issue 8), ``baselines/`` (the naive FastAPI server, the peers, the transport floor),
``goals`` and ``report``.
"""
