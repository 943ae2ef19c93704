"""gateway.rollout.traffic: consistent hashing of the canary split, the finite-answer check, and the rollback rules
of the sliding window (fed with recorded outcomes: no clock decides anything here).

(The split, the fallback and the automatic rollback against real replicas: test_cluster_e2e.py.)"""

from __future__ import annotations

import math

import pytest

from gateway.rollout.traffic import CLIENT_SAMPLES, MAX_CLIENTS, Window, in_canary, is_finite
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


def _window(canary: list[tuple[bool, float]], stable: list[tuple[bool, float]], clients: int = 5) -> Window:
    """Outcomes spread over ``clients`` clients per side, in turn."""
    window = Window(size=200)
    for i, (ok, seconds) in enumerate(canary):
        window.add("canary", ok, seconds, client=f"10.0.0.{i % clients}")
    for i, (ok, seconds) in enumerate(stable):
        window.add("stable", ok, seconds, client=f"10.0.1.{i % clients}")
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
        ([(True, 0.5)] * 100, [(True, 0.01)] * 100, "latency"),  # 0.5 s > 0.01 * 2 + 0.05 for every client
        ([(True, 0.06)] * 100, [(True, 0.01)] * 100, None),  # 0.06 s < 0.07 s: inside the slack
        ([(True, 0.5)] * 99, [(True, 0.01)] * 100, None),  # below 100 samples a p99 is just the maximum
        ([(True, 0.01)] * 99 + [(True, 0.5)], [(True, 0.01)] * 100, None),  # one slow request in 100
    ],
)
def test_window_verdict(canary: list, stable: list, verdict: str | None) -> None:
    assert _window(canary, stable).verdict(SETTINGS) == verdict


def _mixed(slow_clients: int, clients: int = 5, *, rows: int = 1, seconds: float = 0.5) -> Window:
    """``clients`` canary clients, the first ``slow_clients`` of them sending requests of ``rows`` rows that
    take ``seconds``; the others (and every stable client) 10 ms requests of one row."""
    window = Window(size=200)
    for i in range(200):
        client = i % clients
        slow = client < slow_clients
        window.add(
            "canary",
            True,
            seconds if slow else 0.01,
            rows=rows if slow else 1,
            client=f"10.0.0.{client}",
        )
        window.add("stable", True, 0.01, client=f"10.0.1.{i % 5}")
    return window


@pytest.mark.parametrize(
    ("window", "verdict"),
    [
        (_mixed(1), None),  # one client with expensive requests on the canary side
        (_mixed(2), None),  # two: fewer than GATEWAY_CANARY_MIN_CLIENTS (3)
        (_mixed(3, clients=7), None),  # three of seven: not most of the canary's clients
        (_mixed(3), "latency"),  # three of five: the version is slow for most clients
        (_mixed(5, rows=100), None),  # 0.5 s for 100 rows is 5 ms a row: cheaper than stable
        (_mixed(5, rows=2), "latency"),  # 0.25 s a row
    ],
    ids=["1 of 5", "2 of 5", "3 of 7", "3 of 5", "per row: fast", "per row: slow"],
)
def test_the_latency_rule_needs_most_clients_and_compares_cost_per_row(window: Window, verdict: str) -> None:
    assert window.verdict(SETTINGS) == verdict


def test_one_client_holds_at_most_its_share_of_the_evidence_and_clients_are_bounded() -> None:
    window = Window(size=200)
    for i in range(5000):
        window.add("canary", True, 0.01, client=f"client-{i}")
        window.add("stable", True, 0.01, client="one")
    assert len(window.costs["canary"]) == MAX_CLIENTS
    assert len(window.costs["stable"]["one"]) == CLIENT_SAMPLES
    assert len(window.canary) == len(window.stable) == 200


def _failing(failing_clients: int, clients: int = 5) -> Window:
    """Canary requests from ``clients`` clients in turn, every one of the first ``failing_clients`` failing."""
    window = Window(size=200)
    for i in range(100):
        client = i % clients
        window.add("canary", client >= failing_clients, 0.01, client=f"10.0.0.{client}")
        window.add("stable", True, 0.01, client=f"10.0.1.{i % 5}")
    return window


@pytest.mark.parametrize(
    ("window", "verdict"),
    [
        (_failing(1), None),  # 20 % errors, all from one client of five
        (_failing(2), None),
        (_failing(3), "error_rate"),
        (_failing(1, clients=1), "error_rate"),  # the canary's only client: all of its clients
    ],
    ids=["1 of 5", "2 of 5", "3 of 5", "1 of 1"],
)
def test_the_error_rule_needs_failures_from_several_clients(window: Window, verdict: str | None) -> None:
    assert window.verdict(SETTINGS) == verdict
