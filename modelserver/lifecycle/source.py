"""Source: turns a model's base path into aspired versions (TF Serving's FileSystemStoragePathSource).

Contract: ``scan_versions(base_path)`` lists the complete version directories - numeric names only (``00123``
is version 123; ``.tmp-2-x``, ``v1`` and ``0.1`` are ignored) that already hold ``saved_model.pb`` (a
directory still being copied in is skipped until complete; an unreadable one counts, so its load fails and
status says why). ``aspired_versions(config)`` applies the model's version policy; an unreadable base path
gives None (keep serving), never "no versions" (unload all). The ``FileSystemSource`` polls every model
every ``poll_wait_seconds`` (0 = once, negative = never after the first scan) and hands each result to the
callback, which the manager reconciles: one model after another, or with ``concurrent`` (the manager has
several load threads) all models at once, so their loads overlap; ``poll_once`` returns when every model's
callback has returned, then raises the first error any of them raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelserver.lifecycle.version_policy import LatestVersions, VersionPolicy

__all__ = [
    "AspiredCallback",
    "AspiredVersionsSource",
    "FileSystemSource",
    "ModelSource",
    "aspired_versions",
    "scan_versions",
]

log = logging.getLogger("modelserver.source")


@dataclass(frozen=True)
class ModelSource:
    """What the source needs to know about one configured model."""

    name: str
    base_path: Path
    policy: VersionPolicy = field(default_factory=LatestVersions)


def scan_versions(base_path: Path) -> dict[int, Path]:
    """Complete numeric version directories under ``base_path``: {version: path}."""
    found: dict[int, Path] = {}
    try:
        entries = list(os.scandir(base_path))
    except OSError:
        return found
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
    (the manager then keeps what it serves, as TF Serving does on a storage error)."""
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
        self, callback: AspiredCallback, poll_wait_seconds: float, *, concurrent: bool = False
    ) -> None:
        self._callback = callback
        self._poll_wait = poll_wait_seconds
        self._concurrent = concurrent
        self._models: dict[str, ModelSource] = {}
        self._warned: set[str] = set()
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
        except OSError as exc:  # one model's storage error must not stop the others' polls
            log.error("model %s: cannot scan %s: %s", model.name, model.base_path, exc)
            aspired = None
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
