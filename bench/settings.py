"""How big a bench run is. One typed settings class (env prefix ``BENCH_``); ``--smoke`` swaps in the tiny
scale used by ``make bench-smoke`` and the test suite."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SCENARIOS", "BenchSettings"]

# Scenario names, in run order (``--only`` takes a comma-separated subset).
SCENARIOS: tuple[str, ...] = (
    "inprocess",
    "floor",
    "naive",
    "bentoml",
    "ray",
    "kserve",
    "modelserver",
    "gateway",
    "hotswap",
    "memory",
    "tflite",
    "mobilenet",
)


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore")

    models_dir: Path = Path("models")
    # DATA_DIR is the project-wide variable (the Makefile exports it); BENCH_DATA_DIR overrides it.
    data_dir: Path | None = Field(default=None, validation_alias="DATA_DIR")
    results_dir: Path = Path("bench/results")
    work_dir: Path | None = None  # default: a fresh temporary directory, removed at the end

    concurrencies: tuple[int, ...] = (1, 8, 64)
    # The real-size model (MobileNetV2, bench/scenarios/mobilenet.py): its goals are at 16 and 64.
    mobilenet_concurrencies: tuple[int, ...] = (1, 16, 64)
    duration_s: float = Field(default=6.0, gt=0, le=60)  # one measured load point
    warmup_s: float = Field(default=1.0, ge=0, le=10)
    inprocess_s: float = Field(default=4.0, gt=0, le=60)
    hotswap_s: float = Field(default=24.0, gt=0, le=120)  # steady load; the publish happens at 1/3
    profile_s: float = Field(default=5.0, ge=0, le=30)  # py-spy per profiled server (0: no profiles)
    ready_timeout_s: float = Field(default=180.0, gt=0)
    http_timeout_s: int = Field(default=5, ge=1, le=60)  # wrk: a reply slower than this counts as dropped
    only: tuple[str, ...] = SCENARIOS
    # --num_workers of the batching-on model server (the load matrix, gateway, hot swap and its RSS); the
    # memory scenario's server keeps one worker: its RSS growth is compared with one loader's estimate.
    modelserver_workers: int = Field(default=1, ge=1, le=16)
    smoke: bool = False

    @classmethod
    def smoke_scale(cls, **overrides: object) -> BenchSettings:
        """Seconds, not minutes: every scenario still runs end to end, with tiny loads and no profiles."""
        values: dict[str, object] = {
            "concurrencies": (1, 4),
            "mobilenet_concurrencies": (1, 2),
            "duration_s": 0.5,
            "warmup_s": 0.0,
            "inprocess_s": 0.3,
            "hotswap_s": 4.0,
            "profile_s": 0.0,
            "smoke": True,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
