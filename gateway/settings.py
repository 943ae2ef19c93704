"""The gateway's settings: one typed class read from ``GATEWAY_*`` environment variables.

| variable | default | meaning |
| --- | --- | --- |
| `GATEWAY_HOST` | `127.0.0.1` | address to bind (`0.0.0.0` in containers) |
| `GATEWAY_PORT` | `8000` | HTTP port |
| `GATEWAY_DEFAULT_MODEL_SERVER` | `127.0.0.1:8500` | gRPC `host:port` for models not in `MODEL_SERVERS` |
| `GATEWAY_MODEL_SERVERS` | `{}` | JSON `{"model": "host:port"}`: the server of each model |
| `GATEWAY_MODEL_PROTOCOLS` | `{}` | JSON `{"model": "oip"}`: models called over OIP (KServe v2) gRPC |
| `GATEWAY_MODEL_CONFIG_FILE` | `models/models.config` | the servers' models.config: models, desired state |
| `GATEWAY_MODEL_CONFIG_FILES` | `[]` | more models.config files, one per group of servers (comma-separated) |
| `GATEWAY_MODEL_ROOTS` | `[]` | folders under which `PUT /v1/admin/models/{name}` takes a base path (comma-separated; default: the folders of the models.config files and of the configured models) |
| `GATEWAY_MODEL_REPLICAS` | `{}` | JSON `{"model": ["host:port", ...]}`: every replica of a model |
| `GATEWAY_MODELS` | `[]` | model names to offer when the config file is empty (admin off) |
| `GATEWAY_ADMIN_TOKEN` | unset | bearer token for `/v1/admin/*`, >= 16 chars; unset = admin off |
| `GATEWAY_TIMEOUT_SECONDS` | `10` | deadline of each Predict/Classify/Regress call |
| `GATEWAY_METADATA_TIMEOUT_SECONDS` | `5` | deadline of metadata/status calls |
| `GATEWAY_RETRIES` | `2` | extra attempts on UNAVAILABLE (and, for inference, on another replica) |
| `GATEWAY_RETRY_BACKOFF_SECONDS` | `0.1` | first retry backoff; doubles each retry |
| `GATEWAY_MAX_MESSAGE_BYTES` | `67108864` | gRPC send/receive limit (gRPC's own 4 MiB is too small) |
| `GATEWAY_MAX_UPLOAD_BYTES` | `10485760` | largest file or JSON body (413 above) |
| `GATEWAY_MAX_REQUEST_BYTES` | `0` | most bytes of all files of one request (413 above); 0 = 32 MiB (at least one file, at most `MAX_FILES` of them) |
| `GATEWAY_MAX_IMAGE_PIXELS` | `40000000` | largest image in pixels (413 above; Pillow's bomb check) |
| `GATEWAY_MAX_DECODE_BYTES` | `67108864` | memory the images being decoded may take at once, all requests together (channels and intermediate copies counted from the headers; a request over it alone: 413) |
| `GATEWAY_MAX_FILES` | `32` | most files (and texts, records) per request |
| `GATEWAY_MAX_TEXT_CHARS` | `20000` | longest text |
| `GATEWAY_CONTRACT_CACHE_SIZE` | `64` | model versions whose input contract is cached |
| `GATEWAY_STATE_REFRESH_SECONDS` | `5` | period of the reconciler (re-reads the files, repairs replicas) |
| `GATEWAY_ADMIN_RELOAD_TIMEOUT_SECONDS` | `2` | deadline of the config reload sent to each replica by an admin change |
| `GATEWAY_REPLICA_STATUS_TIMEOUT_SECONDS` | `1` | deadline of each replica's status/version check and health probe |
| `GATEWAY_FAILOVER_TIMEOUT_SECONDS` | `1` | an inference attempt gets this long while another replica could answer; 0 = off |
| `GATEWAY_EJECT_SECONDS` | `10` | a replica that failed or timed out stays out of rotation this long (or until healthy) |
| `GATEWAY_HEALTH_INTERVAL_SECONDS` | `1` | how often every listed replica is probed (grpc.health.v1); 0 = no probes |
| `GATEWAY_CANARY_KEY_HEADER` | `x-canary-key` | requests with this header stick to one side of a canary |
| `GATEWAY_CANARY_WINDOW` | `200` | sliding window: the last N requests of each side |
| `GATEWAY_CANARY_MIN_REQUESTS` | `20` | candidate requests in the window before it can be judged |
| `GATEWAY_CANARY_MAX_ERROR_RATE_DELTA` | `0.05` | roll back when candidate errors exceed stable's by this |
| `GATEWAY_CANARY_MAX_P99_RATIO` | `2.0` | ... or candidate latency > stable's x ratio + slack (per row, per client) |
| `GATEWAY_CANARY_P99_SLACK_SECONDS` | `0.05` | the slack of that p99 rule (small latencies are noisy) |
| `GATEWAY_CANARY_MIN_CLIENTS` | `3` | a rollback needs failures from this many clients (peer addresses; all when fewer), or this many and most of the canary's clients slower on it |
| `GATEWAY_SHADOW_MAX_INFLIGHT` | `8` | shadow calls in flight at once (more are skipped) |
| `GATEWAY_RATE_LIMIT_PER_SECOND` | `0` | requests/s per client address (an IPv6 client is its /64; 429 + `Retry-After`); 0 = off |
| `GATEWAY_RATE_LIMIT_BURST` | `0` | requests a client may send at once (0 = twice the rate, at least 1) |
| `GATEWAY_TRUSTED_PROXIES` | `[]` | proxy addresses or networks (comma-separated, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` names the client; none by default: the client is the TCP peer |
| `GATEWAY_MODEL_CONTROL_TOKEN` | unset | `authorization: Bearer` of config reloads (the servers' token) |
| `GATEWAY_MAX_HEADER_BYTES` | `65536` | request line + headers (431 above; 400: request line > 16 KiB) |
| `GATEWAY_HEADER_TIMEOUT_SECONDS` | `10` | a request's headers must arrive within this (408) |
| `GATEWAY_BODY_TIMEOUT_SECONDS` | `30` | a body that sends no byte for this long is dropped (408) |
| `GATEWAY_BODY_DEADLINE_SECONDS` | `120` | a whole body must arrive within this after the headers (408; a slow drip) |
| `GATEWAY_MAX_CONNECTIONS` | `1000` | open client connections; past it a new connection gets 503 and is closed at once, so a connection flood cannot take the descriptors or the event loop from the clients already connected (capped so 256 descriptors stay free; 0 = as many as fit) |
| `GATEWAY_LOG_LEVEL` | `info` | log level |
| `GATEWAY_MONITOR_URL` | unset | the model server's REST address (`http://host:8501`): `GET /v1/models/{name}/drift` and the console's Monitor view read its drift reports |
| `GATEWAY_MONITOR_URLS` | `{}` | JSON `{"model": "http://host:8501"}`: per model, overriding `MONITOR_URL` |
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")
_MODEL_NAME = re.compile(r"^[^/:\s]+$")
Protocol = Literal["tfserving", "oip"]
_EXAMPLES = {
    "GATEWAY_MODEL_SERVERS": '{"fashion": "host:8500"}',
    "GATEWAY_MODEL_REPLICAS": '{"fashion": ["host-a:8500", "host-b:8500"]}',
    "GATEWAY_MONITOR_URLS": '{"fashion": "http://host:8501"}',
    "GATEWAY_MODEL_PROTOCOLS": '{"fashion": "oip"}',
}


def _check_address(value: str) -> str:
    match = _ADDRESS.fullmatch(value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"model server address {value!r} must be host:port, e.g. 127.0.0.1:8500")
    return value


def _json_map(value: object, variable: str, example: str) -> object:
    """A JSON object given as an environment string (other values pass through to validation)."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{variable} must be JSON like {example}: {exc}") from exc
    return value


class Settings(BaseSettings):
    """Every knob of the gateway (table in the module docstring). Invalid or unsafe values fail at start."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    default_model_server: str = "127.0.0.1:8500"
    model_servers: Annotated[dict[str, str], NoDecode] = {}
    model_protocols: Annotated[dict[str, Protocol], NoDecode] = {}
    model_config_file: Path | None = Path("models/models.config")
    model_config_files: Annotated[list[Path], NoDecode] = []
    model_replicas: Annotated[dict[str, list[str]], NoDecode] = {}
    model_roots: Annotated[list[Path], NoDecode] = []
    models: Annotated[list[str], NoDecode] = []
    admin_token: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    metadata_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=0.1, ge=0, le=10)
    max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024, le=2**31 - 1)
    channels_per_server: int = Field(default=4, ge=1, le=64)
    coalesce: bool = True
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024**3)
    max_request_bytes: int = Field(default=0, ge=0, le=16 * 1024**3)
    max_image_pixels: int = Field(default=40_000_000, ge=1024, le=1_000_000_000)
    max_decode_bytes: int = Field(default=64 * 1024**2, ge=1024**2, le=64 * 1024**3)
    max_files: int = Field(default=32, ge=1, le=10_000)
    max_text_chars: int = Field(default=20_000, ge=1, le=10_000_000)
    contract_cache_size: int = Field(default=64, ge=1, le=100_000)
    state_refresh_seconds: float = Field(default=5.0, gt=0, le=3600)
    admin_reload_timeout_seconds: float = Field(default=2.0, gt=0, le=600)
    replica_status_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    failover_timeout_seconds: float = Field(default=1.0, ge=0, le=600)
    eject_seconds: float = Field(default=10.0, gt=0, le=3600)
    health_interval_seconds: float = Field(default=1.0, ge=0, le=3600)
    rate_limit_per_second: float = Field(default=0.0, ge=0, le=1_000_000)
    rate_limit_burst: int = Field(default=0, ge=0, le=1_000_000)
    trusted_proxies: Annotated[list[str], NoDecode] = []
    model_control_token: SecretStr | None = None
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Traces (gateway.tracing), off unless one is set: an OTLP/gRPC collector (the ``otlp`` extra), or a file
    # receiving each span as a JSON line (tests, debugging).
    otlp_endpoint: str = ""
    trace_file: str = ""
    # Share of requests traced when the caller sent no sampled traceparent (None: OTEL_TRACES_SAMPLER, else 1 %).
    trace_sample_ratio: float | None = Field(default=None, ge=0, le=1)
    # Raw-upload logging (gateway.upload_log), opt-in for privacy: off unless a folder is set and the rate > 0.
    upload_log_dir: str = ""
    upload_log_sample_rate: float = Field(default=0.0, ge=0, le=1)
    upload_log_max_file_bytes: int = Field(default=64 * 1024**2, ge=1024, le=16 * 1024**3)
    upload_log_max_total_bytes: int = Field(default=1024**3, ge=1024, le=1024**5)
    upload_log_queue_size: int = Field(default=256, ge=1, le=1_000_000)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    body_deadline_seconds: float = Field(default=120.0, gt=0, le=86400)
    max_connections: int = Field(default=1000, ge=0, le=1_000_000)
    canary_key_header: str = Field(default="x-canary-key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    canary_window: int = Field(default=200, ge=10, le=100_000)
    canary_min_requests: int = Field(default=20, ge=1, le=100_000)
    canary_max_error_rate_delta: float = Field(default=0.05, ge=0, le=1)
    canary_max_p99_ratio: float = Field(default=2.0, ge=1, le=1000)
    canary_p99_slack_seconds: float = Field(default=0.05, ge=0, le=60)
    canary_min_clients: int = Field(default=3, ge=1, le=256)
    shadow_max_inflight: int = Field(default=8, ge=1, le=1000)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    monitor_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    monitor_urls: Annotated[dict[str, str], NoDecode] = {}

    @field_validator("model_servers", "model_replicas", "model_protocols", "monitor_urls", mode="before")
    @classmethod
    def _parse_json_maps(cls, value: object, info: ValidationInfo) -> object:
        name = f"GATEWAY_{(info.field_name or '').upper()}"
        return _json_map(value, name, _EXAMPLES[name])

    @field_validator("model_servers", "model_protocols", "model_replicas")
    @classmethod
    def _check_model_names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for name in value:
            if not _MODEL_NAME.fullmatch(name):
                variable = f"GATEWAY_{(info.field_name or '').upper()}"
                raise ValueError(f"model name {name!r} in {variable} is not a valid model name")
        return value

    @field_validator("models", "model_config_files", "model_roots", mode="before")
    @classmethod
    def _parse_models(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        # Every other value (a host name, `*`) would let any client name its own address.
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"GATEWAY_TRUSTED_PROXIES entry {entry!r} is not an IP address or network "
                    "(e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("model_config_file", "model_control_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("default_model_server")
    @classmethod
    def _check_default(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("model_servers")
    @classmethod
    def _check_servers(cls, value: dict[str, str]) -> dict[str, str]:
        for address in value.values():
            _check_address(address)
        return value

    @field_validator("model_replicas")
    @classmethod
    def _check_replicas(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, addresses in value.items():
            if not addresses or len(addresses) > 256:
                raise ValueError(f"GATEWAY_MODEL_REPLICAS[{name!r}] must list 1 to 256 addresses")
            for address in addresses:
                _check_address(address)
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _check_token(cls, value: object) -> object:
        if value is None or value == "":
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if len(text) < 16:
            raise ValueError(
                "GATEWAY_ADMIN_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`)"
            )
        if text.lower() in {"changeme" * 2, "changethis" * 2, "0" * len(text)} or len(set(text)) < 4:
            raise ValueError("GATEWAY_ADMIN_TOKEN is a placeholder; generate one with `openssl rand -hex 24`")
        return text

    @model_validator(mode="after")
    def _check_sources(self) -> Settings:
        if self.model_config_file is not None and not self.model_config_file.is_file():
            raise ValueError(
                f"GATEWAY_MODEL_CONFIG_FILE={self.model_config_file} does not exist; point it at the "
                "models.config the model servers use, or set it empty and list models in GATEWAY_MODELS"
            )
        for path in self.model_config_files:
            if not path.is_file():
                raise ValueError(f"GATEWAY_MODEL_CONFIG_FILES names {path}, which does not exist")
        return self

    @model_validator(mode="after")
    def _default_request_bytes(self) -> Settings:
        if self.max_request_bytes == 0:
            every_file = self.max_upload_bytes * self.max_files
            object.__setattr__(
                self, "max_request_bytes", min(every_file, max(32 * 1024**2, self.max_upload_bytes))
            )
        elif self.max_request_bytes < self.max_upload_bytes:
            raise ValueError("GATEWAY_MAX_REQUEST_BYTES must be at least GATEWAY_MAX_UPLOAD_BYTES (one file)")
        return self

    @model_validator(mode="after")
    def _default_burst(self) -> Settings:
        if self.rate_limit_per_second > 0 and self.rate_limit_burst == 0:
            object.__setattr__(self, "rate_limit_burst", max(1, int(2 * self.rate_limit_per_second)))
        return self

    def server_for(self, model: str) -> str:
        """The gRPC address serving ``model``."""
        return self.model_servers.get(model, self.default_model_server)

    def monitor_url_for(self, model: str) -> str:
        """The REST address of the model server whose drift report of ``model`` the gateway reads ("": off)."""
        return self.monitor_urls.get(model, self.monitor_url)

    def protocol_for(self, model: str) -> Protocol:
        """How ``model`` is called: TF Serving's API (default) or the Open Inference Protocol."""
        return self.model_protocols.get(model, "tfserving")

    def replica_targets(self, model: str) -> list[str]:
        """Where the replicas of ``model`` are: its list in ``MODEL_REPLICAS``, else its one server address
        (a name that may resolve to many replicas, e.g. a Kubernetes headless Service)."""
        return list(self.model_replicas.get(model) or [self.server_for(model)])

    def allowed_roots(self) -> list[Path]:
        """``MODEL_ROOTS`` resolved ([]: the catalog derives them from the configured models)."""
        return list(dict.fromkeys(root.resolve() for root in self.model_roots))

    def config_files(self) -> list[Path]:
        """Every models.config holding desired state, without repeats."""
        files = ([self.model_config_file] if self.model_config_file else []) + list(self.model_config_files)
        return list(dict.fromkeys(files))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
