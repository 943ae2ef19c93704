"""DriftMonitor: served traffic compared, live, with the reference profile of the version that answered
(``assets.extra/reference_profile.json``, written by the export; ``modelserver.observe.profile``).

Contract:
- The data plane calls ``observe(...)`` after each successful ``serving_default`` Predict of any protocol,
  with the arrays it ran; it never blocks or raises: the arrays (no copy) go on a bounded queue, a full
  queue drops them (``modelserver_drift_dropped_total``). ``sample_rate`` < 1 observes only that share, and
  the thread keeps to ``cpu_budget`` (CPU seconds per second, default 0.03: 3 % of one core): when a second
  of its work used more, requests are skipped (counted in ``report``) for as long as it takes that work to
  average out to the budget (at most 5 s at a time), so the cost under load stays bounded whatever the
  traffic; at low rates every request is observed.
- One background thread derives the features (``row_features``), keeps the last ``window_rows`` rows of each
  in a ring per version, and every ``every_rows`` rows - once ``min_rows`` are in - compares the window with
  the reference: PSI per feature (``modelserver_drift_score{model,version,feature}``), the two-sample KS
  statistic for numeric ones (``modelserver_drift_ks_statistic``), the shift of the mean confidence
  (``modelserver_drift_confidence_shift``). ``modelserver_drift_state{model,version}`` is 1 while any
  feature's PSI is at or above ``threshold`` (the drift state), and every evaluation is counted
  (``modelserver_drift_evaluations_total``, ``modelserver_drift_alarms_total`` for those in drift).
- A version without a profile is not monitored (looked up once). ``report(model)`` gives the latest
  evaluation of each of its versions (live vs reference histograms, scores over time) for the REST API.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelserver.observe.profile import PROFILE_FILE, binned, ks_test, psi, row_features

__all__ = ["DriftMonitor", "DriftSettings"]

log = logging.getLogger("modelserver.drift")

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class DriftSettings:
    threshold: float = 0.25  # PSI: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 a significant shift
    window_rows: int = 1000
    min_rows: int = 200
    every_rows: int = 50
    sample_rate: float = 1.0
    cpu_budget: float = 0.03
    queue_size: int = 1024


class _Window:
    """The last ``window_rows`` rows of each feature of one version, and its evaluations."""

    def __init__(self, profile: dict[str, Any], settings: DriftSettings) -> None:
        self.profile = profile
        self.settings = settings
        self.features: dict[str, Any] = profile["features"]
        self.rings = {name: np.full(settings.window_rows, np.nan) for name in self.features}
        self.position = self.filled = self.since = 0
        self.latest: dict[str, Any] = {}
        self.history: deque[tuple[float, float]] = deque(maxlen=360)

    def add(self, values: Mapping[str, np.ndarray]) -> bool:
        """Append a request's rows; True when an evaluation is due."""
        rows = max((len(v) for v in values.values()), default=0)
        size = self.settings.window_rows
        for start in range(0, rows, size):
            chunk = min(size, rows - start)
            slots = (self.position + np.arange(chunk)) % size
            for name, ring in self.rings.items():
                column = values.get(name)
                ring[slots] = column[start : start + chunk] if column is not None else np.nan
            self.position = (self.position + chunk) % size
        self.filled = min(size, self.filled + rows)
        self.since += rows
        if self.filled >= self.settings.min_rows and self.since >= self.settings.every_rows:
            self.since = 0
            return True
        return False

    def evaluate(self) -> dict[str, Any]:
        live = slice(0, self.filled)
        scores: dict[str, Any] = {}
        for name, stats in self.features.items():
            values = self.rings[name][live]
            values = values[np.isfinite(values)]
            counts = binned(stats, values)
            item = {"psi": psi(stats["counts"], counts), "live_counts": counts.tolist()}
            if stats["kind"] == "numeric":
                item["ks"], item["p_value"] = ks_test(np.asarray(stats["sample"]), values)
                item["live_mean"] = float(values.mean()) if len(values) else None
            scores[name] = item
        worst = max((item["psi"] for item in scores.values()), default=0.0)
        shift = None
        if "confidence" in scores and scores["confidence"]["live_mean"] is not None:
            shift = scores["confidence"]["live_mean"] - self.features["confidence"]["mean"]
        self.latest = {
            "rows": self.filled,
            "max_psi": worst,
            "drift": worst >= self.settings.threshold,
            "confidence_shift": shift,
            "features": scores,
        }
        self.history.append((time.time(), worst))
        return self.latest


class DriftMonitor:
    # long: one declaration per metric
    def __init__(
        self,
        settings: DriftSettings = DriftSettings(),
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self._queue: queue.Queue[tuple[str, int, Path, Arrays, Arrays] | None] = queue.Queue(
            settings.queue_size
        )
        self._windows: dict[tuple[str, int], _Window | None] = {}
        self._lock = threading.Lock()  # guards _windows against report()
        self._random = random.Random()
        self._skip_until = 0.0  # time.monotonic() before which requests are skipped (the CPU budget)
        self.skipped = 0  # requests not observed because the thread was over its CPU budget
        labels = ["model", "version"]
        self.score = Gauge(
            "modelserver_drift_score",
            "Population stability index of a feature: live window vs the version's reference profile.",
            [*labels, "feature"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.ks = Gauge(
            "modelserver_drift_ks_statistic",
            "Two-sample Kolmogorov-Smirnov statistic of a numeric feature vs the reference sample.",
            [*labels, "feature"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.state = Gauge(
            "modelserver_drift_state",
            "1 while any feature's PSI is at or above the drift threshold.",
            labels,
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.confidence_shift = Gauge(
            "modelserver_drift_confidence_shift",
            "Mean confidence of the live window minus the reference's.",
            labels,
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.rows = Counter(
            "modelserver_drift_rows", "Rows compared with a reference.", labels, registry=registry
        )
        self.evaluations = Counter(
            "modelserver_drift_evaluations", "Window evaluations.", labels, registry=registry
        )
        self.alarms = Counter(
            "modelserver_drift_alarms", "Window evaluations in the drift state.", labels, registry=registry
        )
        self.dropped = Counter(
            "modelserver_drift_dropped",
            "Requests not observed: the queue was full.",
            ["model"],
            registry=registry,
        )
        self._thread = threading.Thread(target=self._run, name="drift", daemon=True)
        self._thread.start()

    # ---- request path ----------------------------------------------------------------------------------
    def observe(self, model: str, version: int, path: Path, inputs: Arrays, outputs: Arrays) -> None:
        if self._skip_until and time.monotonic() < self._skip_until:
            self.skipped += 1
            return
        if self.settings.sample_rate < 1.0 and self._random.random() >= self.settings.sample_rate:
            return
        try:
            self._queue.put_nowait((model, version, path, inputs, outputs))
        except queue.Full:
            self.dropped.labels(model).inc()

    # ---- background thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        second, cpu = time.monotonic(), time.thread_time()
        while (item := self._queue.get()) is not None:
            try:
                self._add(*item)
            except Exception:  # a bug here must never stop monitoring or reach a request
                log.exception("drift: could not process a request of model %s", item[0])
            now = time.monotonic()
            if now - second >= 1.0:  # the CPU budget, judged once a second on this thread's own CPU time
                used = time.thread_time()
                share = (used - cpu) / (now - second)
                if share > self.settings.cpu_budget:
                    self._skip_until = now + min(5.0, share / self.settings.cpu_budget - 1.0)
                second, cpu = now, used

    def _window(self, model: str, version: int, path: Path) -> _Window | None:
        key = (model, version)
        if key not in self._windows:
            window = None
            profile_path = path / PROFILE_FILE
            if profile_path.is_file():
                try:
                    window = _Window(json.loads(profile_path.read_text()), self.settings)
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("drift: unreadable reference profile %s: %s", profile_path, exc)
            with self._lock:
                self._windows[key] = window
        return self._windows[key]

    def _add(self, model: str, version: int, path: Path, inputs: Arrays, outputs: Arrays) -> None:
        window = self._window(model, version, path)
        if window is None:
            return
        values = row_features(inputs, outputs, window.profile.get("task", ""))
        rows = max((len(v) for v in values.values()), default=0)
        labels = (model, str(version))
        self.rows.labels(*labels).inc(rows)
        with self._lock:
            due = window.add(values)
            result = window.evaluate() if due else None
        if result is None:
            return
        for name, item in result["features"].items():
            self.score.labels(*labels, name).set(item["psi"])
            if "ks" in item:
                self.ks.labels(*labels, name).set(item["ks"])
        if result["confidence_shift"] is not None:
            self.confidence_shift.labels(*labels).set(result["confidence_shift"])
        self.state.labels(*labels).set(1 if result["drift"] else 0)
        self.evaluations.labels(*labels).inc()
        if result["drift"]:
            self.alarms.labels(*labels).inc()

    def report(self, model: str) -> dict[str, Any]:
        """The latest evaluation of each monitored version of ``model``, with its reference histograms."""
        with self._lock:
            versions = {
                str(version): {
                    "threshold": self.settings.threshold,
                    "latest": window.latest,
                    "history": list(window.history),
                    "reference": {
                        name: {
                            key: stats[key]
                            for key in ("kind", "edges", "categories", "counts")
                            if key in stats
                        }
                        for name, stats in window.features.items()
                    },
                }
                for (name, version), window in self._windows.items()
                if name == model and window is not None
            }
        return {"model": model, "skipped_over_cpu_budget": self.skipped, "versions": versions}

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=5)
        except queue.Full:
            return
        self._thread.join(timeout=10)
