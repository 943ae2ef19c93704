"""Source: turns a model's base path into aspired versions (TF Serving's FileSystemStoragePathSource).

Contract: ``scan_versions(base_path)`` lists the complete version directories - numeric names only (``00123``
is version 123; ``.tmp-2-x``, ``v1`` and ``0.1`` are ignored) that already hold ``saved_model.pb`` (a
directory still being copied in is skipped until complete; an unreadable one counts, so its load fails and
status says why); it raises ``OSError`` when the base path cannot be listed. ``aspired_versions(config)``
applies the model's version policy; a missing or unreadable base path gives None (keep serving), never "no
versions" (unload all). Only a listing that succeeds and holds no complete version is "no versions", as in
TF Serving. An OS error while listing (EMFILE when a connection flood took every descriptor, EIO, EACCES) is
"unknown": that model aspires nothing new this round (the manager keeps what it serves), the next poll
retries, ``modelserver_model_scan_errors`` counts it and the log says so once per model and then at most
every ``SCAN_ERROR_LOG_SECONDS`` (no traceback). The ``FileSystemSource`` polls every model
every ``poll_wait_seconds`` (0 = once, negative = never after the first scan) and hands each result to the
callback, which the manager reconciles: one model after another, or with ``concurrent`` (the manager has
several load threads) all models at once, so their loads overlap; ``poll_once`` returns when every model's
callback has returned, then raises the first error any of them raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelserver.lifecycle.version_policy import LatestVersions, VersionPolicy
from modelserver.metrics import METRICS, Metrics

__all__ = [
    "SCAN_ERROR_LOG_SECONDS",
    "AspiredCallback",
    "AspiredVersionsSource",
    "FileSystemSource",
    "ModelSource",
    "aspired_versions",
    "scan_versions",
]

log = logging.getLogger("modelserver.source")

# A model whose scans keep failing is logged again at most this often (with the count since the last line).
SCAN_ERROR_LOG_SECONDS = 60.0


@dataclass(frozen=True)
class ModelSource:
    """What the source needs to know about one configured model."""

    name: str
    base_path: Path
    policy: VersionPolicy = field(default_factory=LatestVersions)


def scan_versions(base_path: Path) -> dict[int, Path]:
    """Complete numeric version directories under ``base_path``: {version: path}. Raises ``OSError`` when
    ``base_path`` cannot be listed: the caller must read that as "unknown", never as "no versions"."""
    found: dict[int, Path] = {}
    with os.scandir(base_path) as listing:
        entries = list(listing)
    for entry in entries:
        if not entry.name.isdigit() or not entry.is_dir():
            continue
        path = Path(entry.path)
        try:
            complete = (path / "saved_model.pb").is_file() or (path / "model.tflite").is_file()
        except OSError:  # an unreadable version directory is a version: its load fails and status says why
            complete = True
        if complete:
            version = int(entry.name)
            # "1" and "0001" both name version 1: keep the first seen deterministically
            if version not in found or path.name < found[version].name:
                found[version] = path
    return found


def aspired_versions(model: ModelSource) -> dict[int, Path] | None:
    """The policy's choice among the complete versions; None when the base path is not a readable folder
    (the manager then keeps what it serves, as TF Serving does on a storage error). Raises ``OSError`` when
    the folder exists but cannot be listed (same meaning: keep serving, retry next poll)."""
    if not model.base_path.is_dir() or not os.access(model.base_path, os.R_OK | os.X_OK):
        return None  # unreadable reads as "no versions" otherwise, which would unload everything
    found = scan_versions(model.base_path)
    chosen = model.policy.select(found)
    return {v: found[v] for v in sorted(chosen)}


AspiredCallback = Callable[[str, Mapping[int, Path]], Awaitable[None]]


class AspiredVersionsSource(Protocol):
    """What ``ServerCore`` needs from a source: it is told the configured models, and each poll hands every
    model's aspired versions ({version: path}) to the callback it was built with (the manager's input)."""

    def set_models(self, models: Mapping[str, ModelSource]) -> None: ...
    async def poll_once(self) -> None: ...
    def start(self) -> None: ...
    async def stop(self) -> None: ...


class FileSystemSource:
    """Polls the configured models and reports their aspired versions (the manager's input)."""

    def __init__(
        self,
        callback: AspiredCallback,
        poll_wait_seconds: float,
        *,
        concurrent: bool = False,
        metrics: Metrics = METRICS,
    ) -> None:
        self._callback = callback
        self._poll_wait = poll_wait_seconds
        self._concurrent = concurrent
        self._metrics = metrics
        self._models: dict[str, ModelSource] = {}
        self._warned: set[str] = set()
        # model -> (monotonic time of its last scan-error line, errors since that line)
        self._scan_errors: dict[str, tuple[float, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def set_models(self, models: Mapping[str, ModelSource]) -> None:
        self._models = dict(models)

    async def poll_once(self) -> None:
        models = list(self._models.values())
        if not self._concurrent:
            for model in models:
                await self._poll_model(model)
            return
        # every model to its end (a plain gather returns at the first error, the others still running)
        results = await asyncio.gather(*(self._poll_model(m) for m in models), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _poll_model(self, model: ModelSource) -> None:
        try:
            aspired = await asyncio.to_thread(aspired_versions, model)
        except OSError as exc:  # unknown, not "no versions": keep serving, retry next poll
            self._scan_failed(model, exc)
            return
        if model.name in self._scan_errors:
            _, missed = self._scan_errors.pop(model.name)
            log.warning(
                "model %s: %s can be scanned again (%d more failed scans since the last line)",
                model.name,
                model.base_path,
                missed,
            )
        if aspired is None:
            if model.name not in self._warned:
                self._warned.add(model.name)
                log.error(
                    "model %s: base path %s does not exist or is not a folder",
                    model.name,
                    model.base_path,
                )
            return
        if not aspired and model.name not in self._warned:
            self._warned.add(model.name)
            log.warning(
                "No versions of servable %s found under base path %s (numeric version directories "
                "holding saved_model.pb are expected)",
                model.name,
                model.base_path,
            )
        elif aspired:
            self._warned.discard(model.name)
        await self._callback(model.name, aspired)

    def _scan_failed(self, model: ModelSource, exc: OSError) -> None:
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        self._metrics.scan_errors.labels(model.name, code).inc()
        now = time.monotonic()
        last, missed = self._scan_errors.get(model.name, (-SCAN_ERROR_LOG_SECONDS, 0))
        if now - last < SCAN_ERROR_LOG_SECONDS:
            self._scan_errors[model.name] = (last, missed + 1)
            return
        self._scan_errors[model.name] = (now, 0)
        log.error(
            "model %s: cannot scan %s (%s%s): keeping the versions it serves, retrying at the next poll",
            model.name,
            model.base_path,
            exc.strerror or exc,
            f"; {missed} more failed scans since the last line" if missed else "",
        )

    def start(self) -> None:
        if self._poll_wait > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="file-system-source")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_wait)
            try:
                await self.poll_once()
            except Exception:  # a poll must never kill the server; the next one retries
                log.exception("file system poll failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
