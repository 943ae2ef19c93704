"""Development tooling shared by ``tests/``, ``bench/`` and ``reliability/`` (never imported by a service).

- ``devtools.procs``: server processes on loopback ports (start, readiness, RSS/CPU, stop), ``free_port``.
- ``devtools.servers``: the stack's own processes - ``start_modelserver``, ``start_gateway``.
- ``devtools.waiting``: waiting on a condition with a hang-guard deadline (never a timing assertion).
- ``devtools.files``: atomic writes (temp file in the same folder, fsync, rename).
- ``devtools.exported`` / ``devtools.tiny_models``: real and hand-built SavedModels for tests and scenarios.
- ``devtools.fashion``: real Fashion-MNIST test images and labels.
"""
