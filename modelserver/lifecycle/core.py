"""ServerCore: owns the configured models and wires source -> manager (TF Serving's ``ServerCore``).

Contract: ``apply_config(entries)`` makes the server serve exactly ``entries``: new models are polled and
their aspired versions loaded before it returns, removed models are unloaded, changed policies take
effect, and version labels are applied last (each must name an AVAILABLE version unless
``allow_version_labels_for_unavailable_models``). Used at start, by config-file polling and by
HandleReloadConfigRequest; calls are serialised. With several load threads (``--num_load_threads`` > 1)
the source reconciles the models concurrently, at start and on every poll and reload alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import ModelEntry
from modelserver.lifecycle.source import AspiredCallback, AspiredVersionsSource, FileSystemSource
from modelserver.lifecycle.unabandoned import run_to_end

__all__ = ["ServerCore"]

log = logging.getLogger("modelserver.core")


class ServerCore:
    def __init__(
        self,
        manager: AspiredVersionsManager,
        *,
        file_system_poll_wait_seconds: float,
        allow_version_labels_for_unavailable_models: bool = False,
        source: Callable[[AspiredCallback], AspiredVersionsSource] | None = None,
    ) -> None:
        """``source`` builds the source from the callback (default: a ``FileSystemSource``; tests fake it)."""
        self.manager = manager
        concurrent = manager.load_threads > 1  # models reconciled at once, so their loads overlap
        make_source = source or (
            lambda callback: FileSystemSource(callback, file_system_poll_wait_seconds, concurrent=concurrent)
        )
        self.source = make_source(self._aspired)
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._entries: dict[str, ModelEntry] = {}
        self._lock = asyncio.Lock()

    @property
    def entries(self) -> dict[str, ModelEntry]:
        return dict(self._entries)

    def entry(self, name: str) -> ModelEntry | None:
        """The configured model ``name`` (its config as applied last), if any; cheap (the request path)."""
        return self._entries.get(name)

    def is_configured(self, name: str) -> bool:
        return name in self._entries

    async def _aspired(self, name: str, aspired: Mapping[int, Path]) -> None:
        if name in self._entries:  # a poll racing a reload must not resurrect a removed model
            await self.manager.reconcile(name, aspired)

    async def apply_config(self, entries: Mapping[str, ModelEntry]) -> None:
        """Serve exactly ``entries`` (module docstring). Applied to the end even when the caller is cancelled,
        e.g. a HandleReloadConfigRequest whose deadline passed mid-load (``run_to_end``)."""
        await run_to_end(self._apply(entries), "apply config")

    async def _apply(self, entries: Mapping[str, ModelEntry]) -> None:
        async with self._lock:
            removed = [name for name in self._entries if name not in entries]
            self._entries = dict(entries)
            self.source.set_models({name: entry.source for name, entry in entries.items()})
            for name in removed:
                log.info("model %s: removed from the config, unloading", name)
                await self.manager.remove_model(name)
            await self.source.poll_once()
            for name, entry in entries.items():
                self.manager.set_labels(name, entry.labels, allow_unavailable=self._allow_unavailable_labels)
            log.info("serving models: %s", ", ".join(sorted(entries)) or "(none)")

    def start_polling(self) -> None:
        self.source.start()

    async def stop(self) -> None:
        await self.source.stop()
        await self.manager.shutdown()
