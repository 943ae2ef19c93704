"""gateway.settings: environment parsing and fail-fast validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings

CONFIG = Path(__file__).resolve().parents[2] / "models" / "models.config"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GATEWAY_MODEL_CONFIG_FILE", str(CONFIG))


def test_defaults() -> None:
    settings = Settings()
    assert settings.port == 8000 and settings.default_model_server == "127.0.0.1:8500"
    assert settings.admin_token is None and settings.server_for("fashion") == "127.0.0.1:8500"


def test_model_servers_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODEL_SERVERS", '{"fashion": "fashion-serving:8500"}')
    monkeypatch.setenv("GATEWAY_MODELS", "a, b")
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "s3cr3t-token-for-tests")
    settings = Settings()
    assert settings.server_for("fashion") == "fashion-serving:8500"
    assert settings.server_for("text") == "127.0.0.1:8500"
    assert settings.models == ["a", "b"]
    assert settings.admin_token is not None and "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("GATEWAY_MODEL_SERVERS", "{not json", "JSON"),
        ("GATEWAY_MODEL_SERVERS", '{"fashion": "no-port"}', "host:port"),
        ("GATEWAY_DEFAULT_MODEL_SERVER", "localhost:99999", "host:port"),
        ("GATEWAY_ADMIN_TOKEN", "short", "16 characters"),
        ("GATEWAY_ADMIN_TOKEN", "aaaaaaaaaaaaaaaaaaaa", "placeholder"),
        ("GATEWAY_MODEL_CONFIG_FILE", "/nonexistent/models.config", "does not exist"),
        ("GATEWAY_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("GATEWAY_MAX_MESSAGE_BYTES", "1000", "greater than or equal"),
        ("GATEWAY_LOG_LEVEL", "loud", "Input should be"),
        ("GATEWAY_MODEL_REPLICAS", "[1, 2", "GATEWAY_MODEL_REPLICAS must be JSON"),
        ("GATEWAY_MODEL_REPLICAS", '{"fashion": []}', "1 to 256 addresses"),
        ("GATEWAY_MODEL_REPLICAS", '{"fashion": ["a:1", "no-port"]}', "host:port"),
        ("GATEWAY_MODEL_CONFIG_FILES", "/nonexistent/a.config", "does not exist"),
        ("GATEWAY_CANARY_MAX_ERROR_RATE_DELTA", "2", "less than or equal"),
        ("GATEWAY_CANARY_KEY_HEADER", "bad header!", "should match"),
    ],
)
def test_unsafe_values_fail_fast(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=fragment):
        Settings()


def test_empty_config_file_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODEL_CONFIG_FILE", "")
    assert Settings().model_config_file is None
