"""gateway.rollout.traffic: consistent hashing of the canary split, the finite-answer check, and the rollback rules
of the sliding window (fed with recorded outcomes: no clock decides anything here).

(The split, the fallback and the automatic rollback against real replicas: test_cluster_e2e.py.)"""

from __future__ import annotations

import math

import pytest

from gateway.rollout.traffic import Window, in_canary, is_finite
from gateway.settings import Settings

SETTINGS = Settings(
    model_config_file=None,
    canary_min_requests=20,
    canary_max_error_rate_delta=0.05,
    canary_max_p99_ratio=2.0,
    canary_p99_slack_seconds=0.05,
)


def test_keys_stick_to_one_side_and_a_higher_weight_only_moves_keys_to_the_canary() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    at10 = {k for k in keys if in_canary("fashion", k, 10)}
    at30 = {k for k in keys if in_canary("fashion", k, 30)}
    assert at10 <= at30  # consistent: raising the weight never moves a key back to stable
    assert all(in_canary("fashion", k, 10) for k in at10)  # sticky
    # 5000 keys at 10 %: mean 500, sd = sqrt(5000 * 0.1 * 0.9) = 21.2; 5 sd = 106 (a hash is not a coin, but
    # sha256 spreads keys uniformly: a wider miss means the mapping is wrong)
    assert abs(len(at10) - 500) <= 106 and abs(len(at30) - 1500) <= 5 * math.sqrt(5000 * 0.3 * 0.7)
    assert not any(in_canary("fashion", k, 0) for k in keys) and all(
        in_canary("fashion", k, 100) for k in keys
    )


@pytest.mark.parametrize(
    ("value", "finite"),
    [
        ([{"y": [1.0, 2.0]}], True),
        ([{"y": [1.0, None]}], False),  # a NaN the reply turned into null
        ([{"label": "cat", "score": float("nan")}], False),
        ([{"value": float("inf")}], False),
        ([{"label": "cat", "score": 0.9, "top": [{"label": "cat", "score": 0.9}]}], True),
    ],
)
def test_is_finite(value: object, finite: bool) -> None:
    assert is_finite(value) is finite


def _window(canary: list[tuple[bool, float]], stable: list[tuple[bool, float]]) -> Window:
    window = Window(size=200)
    for ok, seconds in canary:
        window.add("canary", ok, seconds)
    for ok, seconds in stable:
        window.add("stable", ok, seconds)
    return window


@pytest.mark.parametrize(
    ("canary", "stable", "verdict"),
    [
        ([(True, 0.01)] * 19 + [(False, 0.01)] * 19, [(True, 0.01)] * 100, "error_rate"),
        ([(False, 0.01)] * 19, [(True, 0.01)] * 100, None),  # too few candidate requests to judge
        (
            [(True, 0.01)] * 96 + [(False, 0.01)] * 4,
            [(True, 0.01)] * 100,
            None,
        ),  # 4 % more errors: within 5 %
        ([(True, 0.01)] * 90 + [(False, 0.01)] * 10, [(True, 0.01)] * 94 + [(False, 0.01)] * 6, None),
        ([(True, 0.5)] * 100, [(True, 0.01)] * 100, "p99"),  # 0.5 s > 0.01 * 2 + 0.05
        ([(True, 0.06)] * 100, [(True, 0.01)] * 100, None),  # 0.06 s < 0.07 s: inside the slack
        ([(True, 0.5)] * 99, [(True, 0.01)] * 100, None),  # below 100 samples a p99 is just the maximum
        ([(True, 0.01)] * 99 + [(True, 0.5)], [(True, 0.01)] * 100, None),  # one slow request in 100
    ],
)
def test_window_verdict(canary: list, stable: list, verdict: str | None) -> None:
    assert _window(canary, stable).verdict(SETTINGS) == verdict


def test_window_slides() -> None:
    window = _window([(False, 0.01)] * 200 + [(True, 0.01)] * 200, [(True, 0.01)] * 50)
    assert window.figures()["canary_error_rate"] == 0.0 and window.figures()["canary_requests"] == 200
