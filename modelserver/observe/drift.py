"""DriftMonitor: served traffic compared, live, with the reference profile of the version that answered
(``assets.extra/reference_profile.json``, written by the export; ``modelserver.observe.profile``).

Contract:
- The data plane calls ``observe(...)`` after each successful ``serving_default`` Predict of any protocol,
  with the arrays it ran; it never blocks for long or raises. Its cost is a lock, a counter and (for a sampled
  request) a list slot, whatever the traffic: each version keeps a uniform sample of the requests of the
  current interval (reservoir sampling: every request of the interval has the same chance, so no protocol,
  client or burst is favoured), at most ``rows_per_second * interval`` of them; the arrays are referenced,
  not copied. ``sample_rate`` < 1 first drops that share of requests.
- One background thread wakes every ``interval`` seconds, takes the interval's samples and, per version, draws
  a uniform sample of at most ``rows_per_second * interval`` rows from them, derives their features in one
  vectorised ``row_features`` call and adds them to a ring of the last ``window_rows`` rows; every
  ``every_rows`` rows - once ``min_rows`` are in - the window is compared with the reference: PSI per feature
  (``modelserver_drift_score{model,version,feature}``), the two-sample KS statistic for numeric ones
  (``modelserver_drift_ks_statistic``), the shift of the mean confidence (``modelserver_drift_confidence_shift``).
  ``modelserver_drift_state{model,version}`` is 1 while any feature's PSI is at or above ``threshold`` (the
  drift state); evaluations are counted (``modelserver_drift_evaluations_total``, ``..._alarms_total``).
- So the monitor's CPU is bounded by ``rows_per_second`` per version, not by the request rate; the thread
  also keeps to ``cpu_budget`` (CPU seconds per second): when an interval's work used more, the sample size
  shrinks in proportion (down to 1/64 of it) and grows back while the work is under half the budget.
  Below ``rows_per_second`` every request is compared; above it, an alarm needs the same number of compared
  rows (``min_rows``, then every ``every_rows``), i.e. about ``rows / rows_per_second`` seconds of traffic.
  ``modelserver_drift_requests_total`` counts the requests seen, ``modelserver_drift_rows_total`` the rows
  compared.
- A version without a profile is not monitored (looked up once). ``report(model)`` gives the latest
  evaluation of each of its versions (live vs reference histograms, scores over time) for the REST API.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelserver.observe.profile import PROFILE_FILE, binned, ks_test, psi, row_features

__all__ = ["DriftMonitor", "DriftSettings"]

log = logging.getLogger("modelserver.drift")

Arrays = Mapping[str, np.ndarray]
_MIN_SCALE = 1 / 64  # the CPU budget shrinks the sample to no less than this share of rows_per_second


@dataclass(frozen=True)
class DriftSettings:
    threshold: float = 0.25  # PSI: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 a significant shift
    window_rows: int = 1000
    min_rows: int = 200
    every_rows: int = 50
    rows_per_second: float = 100.0  # per version: rows compared at most (a uniform sample of the traffic)
    interval: float = 1.0  # seconds between the thread's hand-offs
    sample_rate: float = 1.0
    cpu_budget: float = 0.03


@dataclass
class _Sample:
    """One version's requests of the current interval: how many were seen and a uniform sample of them."""

    path: Path
    seen: int = 0
    kept: list[tuple[Arrays, Arrays]] = field(default_factory=list)


def _request_rows(inputs: Arrays) -> int:
    return max((len(a) for a in inputs.values() if a.ndim), default=0)


def _stack(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several requests joined per tensor (the parts whose shape most requests share, if they differ)."""
    joined: dict[str, np.ndarray] = {}
    for name in {name for part in parts for name in part}:
        arrays = [part[name] for part in parts if name in part]
        shape = Tally(a.shape[1:] for a in arrays).most_common(1)[0][0]
        joined[name] = np.concatenate([a for a in arrays if a.shape[1:] == shape])
    return joined


def gather(
    kept: list[tuple[Arrays, Arrays]], limit: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """At most ``limit`` rows drawn uniformly from the rows of ``kept`` requests, as joined inputs and outputs
    (a tensor whose first dimension is not the request's rows is left out)."""
    sizes = np.array([_request_rows(inputs) for inputs, _ in kept], np.int64)
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if len(ends) else 0
    chosen = np.arange(total) if total <= limit else np.sort(rng.choice(total, limit, replace=False))
    owner = np.searchsorted(ends, chosen, side="right")
    parts_in: list[dict[str, np.ndarray]] = []
    parts_out: list[dict[str, np.ndarray]] = []
    for request in np.unique(owner):
        rows = chosen[owner == request] - (ends[request] - sizes[request])
        inputs, outputs = kept[request]
        size = sizes[request]
        parts_in.append({k: a[rows] for k, a in inputs.items() if a.ndim and len(a) == size})
        parts_out.append({k: a[rows] for k, a in outputs.items() if a.ndim and len(a) == size})
    return _stack(parts_in), _stack(parts_out)


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
        """Append rows; True when an evaluation is due."""
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

    def extend(self, values: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Append rows in the steps ``add`` evaluates at (as if they had come one by one): the evaluations."""
        rows = max((len(v) for v in values.values()), default=0)
        results, start = [], 0
        while start < rows:
            step = max(self.settings.min_rows - self.filled, self.settings.every_rows - self.since, 1)
            if self.add({name: v[start : start + step] for name, v in values.items()}):
                results.append(self.evaluate())
            start += step
        return results

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
        self._rows_limit = max(1, round(settings.rows_per_second * settings.interval))
        self._scale = 1.0  # share of _rows_limit sampled now (the CPU budget lowers it)
        self._capacity = self._rows_limit  # requests kept per version and interval (read on the request path)
        self._samples: dict[tuple[str, int], _Sample] = {}
        self._sampling = threading.Lock()  # guards _samples between the request path and the thread
        self._windows: dict[tuple[str, int], _Window | None] = {}
        self._lock = threading.Lock()  # guards _windows against report()
        self._random = random.Random()
        self._rng = np.random.default_rng()
        self._stop = threading.Event()
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
        self.requests = Counter(
            "modelserver_drift_requests",
            "Requests the drift monitor saw (after --drift_sample_rate); a uniform sample of them is compared.",
            labels,
            registry=registry,
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
        self._thread = threading.Thread(target=self._run, name="drift", daemon=True)
        self._thread.start()

    # ---- request path ----------------------------------------------------------------------------------
    def observe(self, model: str, version: int, path: Path, inputs: Arrays, outputs: Arrays) -> None:
        if self.settings.sample_rate < 1.0 and self._random.random() >= self.settings.sample_rate:
            return
        with self._sampling:
            sample = self._samples.get((model, version))
            if sample is None:
                sample = self._samples[(model, version)] = _Sample(path)
            sample.seen += 1
            if len(sample.kept) < self._capacity:
                sample.kept.append((inputs, outputs))
            elif (slot := int(self._random.random() * sample.seen)) < self._capacity:
                sample.kept[slot] = (inputs, outputs)  # reservoir sampling: each request kept with p = k/seen

    # ---- background thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            self.flush()

    def flush(self) -> None:
        """Compare the interval's samples (the thread calls it every ``interval`` seconds)."""
        with self._sampling:
            samples, self._samples = self._samples, {}
        started = time.thread_time()
        for (model, version), sample in samples.items():
            try:
                self._add(model, version, sample)
            except Exception:  # a bug here must never stop monitoring or reach a request
                log.exception("drift: could not process requests of model %s", model)
        share = (time.thread_time() - started) / self.settings.interval
        if share > self.settings.cpu_budget:
            self._scale = max(_MIN_SCALE, self._scale * self.settings.cpu_budget / share)
        elif share < self.settings.cpu_budget / 2:
            self._scale = min(1.0, self._scale * 1.25)
        self._capacity = max(1, round(self._rows_limit * self._scale))

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

    def _add(self, model: str, version: int, sample: _Sample) -> None:
        labels = (model, str(version))
        self.requests.labels(*labels).inc(sample.seen)
        window = self._window(model, version, sample.path)
        if window is None or not sample.kept:
            return
        inputs, outputs = gather(sample.kept, self._capacity, self._rng)
        values = row_features(inputs, outputs, window.profile.get("task", ""))
        self.rows.labels(*labels).inc(max((len(v) for v in values.values()), default=0))
        with self._lock:
            results = window.extend(values)
        if not results:
            return
        result = results[-1]
        for name, item in result["features"].items():
            self.score.labels(*labels, name).set(item["psi"])
            if "ks" in item:
                self.ks.labels(*labels, name).set(item["ks"])
        if result["confidence_shift"] is not None:
            self.confidence_shift.labels(*labels).set(result["confidence_shift"])
        self.state.labels(*labels).set(1 if result["drift"] else 0)
        self.evaluations.labels(*labels).inc(len(results))
        self.alarms.labels(*labels).inc(sum(1 for r in results if r["drift"]))

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
        sampling = {"rows_per_second": self.settings.rows_per_second * self._scale}
        return {"model": model, "sampling": sampling, "versions": versions}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
