"""The independent attack (issue 17), replayed and extended where the other scenarios do not look: hand-built
gRPC tensors, the control API, HTTP framing and sizes, compression, slow clients, logs, browser headers.

Every class must end in a 4xx (or gRPC's INVALID_ARGUMENT / UNAUTHENTICATED / PERMISSION_DENIED /
RESOURCE_EXHAUSTED), with the services up, their RSS growing by less than ``RSS_BOUND_BYTES`` per class, no
traceback in their logs, and a neighbour client served meanwhile. The stack must run with ``attack_options``
(a model-control token on both sides, short header/body timeouts, a fast reconciler).
"""

from __future__ import annotations

import secrets
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx

from reliability.harness import Neighbour, growth, log_lines, peak_rss, raw_http
from reliability.outcome import Outcome
from reliability.replies import error_message, leaks
from reliability.stack import Stack, StackOptions, wait_until
from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tfs_protos.tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = [
    "REPO_ROOT",
    "RSS_BOUND_BYTES",
    "attack_options",
    "browser",
    "control_plane",
    "decompression_bomb",
    "grpc_tensors",
    "header_limits",
    "log_amplification",
    "oversized_message",
    "ports_guidance",
    "run",
    "slow_clients",
    "streamed_body",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RSS_BOUND_BYTES = 100 * 1024 * 1024
# A large gRPC message that fails validation: grpc's receive buffer, the parsed message and one temporary
# copy of tensor_content (protobuf hands bytes fields out as new objects) - never more.
PEAK_RATIO = 3.5
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
FASHION_REST = "/v1/models/fashion:predict"
HOUSING = "/v1/models/housing:regress"
_TRACEBACK = "Traceback (most recent call last)"


def attack_options(base: StackOptions | None = None) -> StackOptions:
    """The stack settings this scenario needs, added to ``base``."""
    base = base or StackOptions()
    token = secrets.token_hex(24)
    return StackOptions(
        gateway_env={
            **base.gateway_env,
            "GATEWAY_MODEL_CONTROL_TOKEN": token,
            "GATEWAY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "GATEWAY_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "GATEWAY_STATE_REFRESH_SECONDS": "1",
        },
        modelserver_flags=(
            *base.modelserver_flags,
            f"--model_control_token={token}",
            f"--rest_api_header_timeout_seconds={HEADER_TIMEOUT}",
            f"--rest_api_body_timeout_seconds={BODY_TIMEOUT}",
        ),
        modelserver_user=base.modelserver_user,
    )


def control_token(stack: Stack) -> str:
    for flag in stack.options.modelserver_flags:
        if flag.startswith("--model_control_token="):
            return flag.split("=", 1)[1]
    return ""


# ---------------------------------------------------------------------------------------------- helpers


def _tensor(
    dims: list[int], dtype: int = types_pb2.DT_FLOAT, unknown_rank: bool = False, **fields: Any
) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims], unknown_rank=unknown_rank
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **fields)


def _predict(stack: Stack, tensor: tensor_pb2.TensorProto, timeout: float = 60) -> tuple[str, str]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "fashion"
    request.inputs["image"].CopyFrom(tensor)
    options = [("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)]
    with grpc.insecure_channel(stack.grpc_target, options=options) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or ""  # type: ignore[attr-defined]
    return "OK", ""


def _alive(stack: Stack) -> bool:
    return bool(stack.gateway and stack.gateway.alive() and stack.modelserver and stack.modelserver.alive())


def _served(stack: Stack) -> bool:
    try:
        reply = httpx.post(
            f"{stack.gateway_url}{HOUSING}", json={"records": [{"median_income": 3.0}]}, timeout=10
        )
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


# ------------------------------------------------------------------------------------------ the classes


def control_plane(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """HandleReloadConfigRequest: no or a wrong token, base paths outside the model roots (refused, nothing
    changes); then an authorised empty config, which the gateway must heal by restoring the full config."""
    token = control_token(stack)
    empty = model_server_config_pb2.ModelServerConfig()
    empty.model_config_list.SetInParent()

    def config_at(path: str) -> model_server_config_pb2.ModelServerConfig:
        config = model_server_config_pb2.ModelServerConfig()
        entry = config.model_config_list.config.add(
            name="fashion", base_path=path, model_platform="tensorflow"
        )
        del entry
        return config

    escape = stack.workdir / "escape-link"
    if not escape.exists():
        escape.symlink_to("/etc")
    cases: list[tuple[str, model_server_config_pb2.ModelServerConfig, str | None, set[str]]] = [
        ("empty config, no token", empty, None, {"UNAUTHENTICATED"}),
        ("empty config, wrong token", empty, "x" * len(token), {"UNAUTHENTICATED"}),
        ("empty config, token with a prefix", empty, token[:-1], {"UNAUTHENTICATED"}),
        ("base_path /etc", config_at("/etc"), token, {"PERMISSION_DENIED"}),
        ("base_path /tmp", config_at("/tmp"), token, {"PERMISSION_DENIED"}),
        (
            "base_path ../ out of the repository",
            config_at(str(stack.repo / ".." / "..")),
            token,
            {"PERMISSION_DENIED"},
        ),
        ("base_path through a symlink to /etc", config_at(str(escape)), token, {"PERMISSION_DENIED"}),
        ("relative base_path", config_at("models/../../etc"), token, {"PERMISSION_DENIED"}),
    ]
    refused = 0
    with grpc.insecure_channel(stack.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        for name, config, sent, expected in cases:
            metadata = (("authorization", f"Bearer {sent}"),) if sent is not None else None
            try:
                stub.HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(config=config), timeout=60, metadata=metadata
                )
                code, details = "OK", ""
            except grpc.RpcError as exc:
                code, details = exc.code().name, exc.details() or ""  # type: ignore[attr-defined]
            ok = code in expected and token not in details
            refused += ok
            outcome.cases.append({"case": f"control: {name}", "status": code, "expected": sorted(expected)})
            outcome.check(ok, f"control: {name}: got {code} {details[:160]!r}, expected {sorted(expected)}")
        outcome.check(_served(stack), "control: a refused reload changed what is served")
        # An authorised caller (or an operator's mistake) empties the server: the gateway must restore it.
        started = time.monotonic()
        stub.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=empty),
            timeout=60,
            metadata=(("authorization", f"Bearer {token}"),),
        )
    healed = wait_until(lambda: _served(stack), 90, interval=0.5)
    heal_seconds = round(time.monotonic() - started, 1)
    outcome.check(healed, "control: the gateway did not restore the models after an empty config (90 s)")
    return {
        "control_refused": refused,
        "control_tried": len(cases),
        "control_healed": healed,
        "control_heal_seconds": heal_seconds,
    }


def grpc_tensors(stack: Stack, outcome: Outcome, big_message_bytes: int) -> dict[str, Any]:
    """Hand-built Predict tensors: declared shapes with no or too few values, huge or unknown dimensions,
    dtypes no client may send, a -1 dimension with tensor_content; then a large message that fails
    validation (its peak RSS must stay under ``PEAK_RATIO`` times its size)."""
    pid = stack.pids()["modelserver"]
    image = [1, 28, 28, 1]
    cases: list[tuple[str, tensor_pb2.TensorProto]] = [
        ("[20000,28,28,1] with no values (44 bytes)", _tensor([20000, 28, 28, 1])),
        ("[20000,28,28,1] with one value", _tensor([20000, 28, 28, 1], float_val=[0.5])),
        ("[2^40,28,28,1]", _tensor([2**40, 28, 28, 1])),
        ("[2^62,2^62] (overflowing element count)", _tensor([2**62, 2**62])),
        ("[1,28,28,1] with 10 values", _tensor(image, float_val=[0.1] * 10)),
        ("-1 dimension with tensor_content", _tensor([-1, 28, 28, 1], tensor_content=b"\0" * 3136)),
        ("tensor_content one byte short", _tensor(image, tensor_content=b"\0" * 3135)),
        ("unknown_rank", _tensor([], unknown_rank=True)),
        ("DT_RESOURCE input", _tensor(image, types_pb2.DT_RESOURCE)),
        ("DT_VARIANT input", _tensor(image, types_pb2.DT_VARIANT)),
        ("DT_INVALID input", _tensor(image, types_pb2.DT_INVALID)),
        ("dtype 9999", _tensor(image, 9999)),
        ("rank 40", _tensor([1] * 40, float_val=[0.5])),
        ("100000-row batch, no values", _tensor([100_000, 28, 28, 1])),
    ]
    refused = 0
    worst = 0
    for name, tensor in cases:
        with peak_rss(pid) as found:
            code, details = _predict(stack, tensor)
        worst = max(worst, growth(found))
        ok = code == "INVALID_ARGUMENT" and bool(details) and not leaks(details)
        refused += ok
        outcome.cases.append({"case": f"gRPC tensor: {name}", "status": code, "rss_mib": growth(found) >> 20})
        outcome.check(ok, f"gRPC tensor {name}: got {code} {details[:160]!r}, expected INVALID_ARGUMENT")
        outcome.check(
            growth(found) <= RSS_BOUND_BYTES,
            f"gRPC tensor {name}: modelserver anonymous RSS grew {growth(found) >> 20} MiB",
        )
    # A large message whose content does not match its shape: refused after parsing, before any copy.
    count = big_message_bytes // 4
    tensor = _tensor([count + 1], tensor_content=b"\0" * (count * 4))
    with peak_rss(pid) as found:
        code, details = _predict(stack, tensor, timeout=300)
    ratio = round(growth(found) / big_message_bytes, 2)
    outcome.cases.append(
        {"case": f"gRPC {big_message_bytes >> 20} MiB invalid", "status": code, "peak_ratio": ratio}
    )
    outcome.check(
        code == "INVALID_ARGUMENT", f"gRPC {big_message_bytes >> 20} MiB invalid message: got {code}"
    )
    outcome.check(
        ratio <= PEAK_RATIO, f"gRPC {big_message_bytes >> 20} MiB invalid message peaked at {ratio}x its size"
    )
    return {
        "grpc_tensor_refused": refused,
        "grpc_tensor_tried": len(cases),
        "grpc_tensor_worst_rss_mib": round(worst / 2**20, 1),
        "grpc_invalid_message_mib": big_message_bytes >> 20,
        "grpc_invalid_message_peak_ratio": ratio,
    }


def oversized_message(stack: Stack, outcome: Outcome, size: int) -> dict[str, Any]:
    """A message over ``--max_request_bytes`` (256 MiB default): gRPC refuses it from its length prefix."""
    pid = stack.pids()["modelserver"]
    tensor = _tensor([size // 4], tensor_content=b"\0" * (size // 4 * 4))
    with peak_rss(pid) as found:
        code, _ = _predict(stack, tensor, timeout=300)
    outcome.check(code == "RESOURCE_EXHAUSTED", f"gRPC {size >> 20} MiB message: got {code}")
    outcome.check(
        growth(found) <= RSS_BOUND_BYTES,
        f"gRPC {size >> 20} MiB message: anonymous RSS grew {growth(found) >> 20} MiB",
    )
    return {
        "grpc_oversized_mib": size >> 20,
        "grpc_oversized_status": code,
        "grpc_oversized_rss_mib": growth(found) >> 20,
    }


def decompression_bomb(stack: Stack, outcome: Outcome, inflated: int) -> dict[str, Any]:
    """gzip bodies inflating to ``inflated`` bytes, to the modelserver's REST API and to the gateway."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(inflated >> 20)) + compressor.flush()
    figures: dict[str, Any] = {"bomb_compressed_kib": len(bomb) >> 10, "bomb_inflated_mib": inflated >> 20}
    pids = stack.pids()
    for target, base, path, body_ok in (
        ("modelserver", stack.rest_url, FASHION_REST, {413}),
        ("gateway", stack.gateway_url, HOUSING, {413, 415, 400}),
    ):
        neighbour_url = f"{stack.gateway_url}{HOUSING}"
        with (
            Neighbour(neighbour_url, {"records": [{"median_income": 3.0}]}) as neighbour,
            peak_rss(pids[target]) as found,
        ):
            reply = httpx.post(
                f"{base}{path}",
                content=bomb,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
                timeout=120,
            )
        ok = reply.status_code in body_ok and error_message(reply) is not None
        outcome.check(ok, f"{target} gzip bomb: got {reply.status_code} {reply.text[:160]!r}")
        outcome.check(
            growth(found) <= RSS_BOUND_BYTES,
            f"{target} gzip bomb: anonymous RSS grew {growth(found) >> 20} MiB",
        )
        outcome.check(
            neighbour.failures == 0, f"{target} gzip bomb: {neighbour.failures} neighbour calls failed"
        )
        figures[f"bomb_{target}_status"] = reply.status_code
        figures[f"bomb_{target}_rss_mib"] = round(growth(found) / 2**20, 1)
        figures[f"bomb_{target}_neighbour_worst_ms"] = neighbour.worst_ms
        figures[f"bomb_{target}_neighbour_median_ms"] = neighbour.median_ms
        figures[f"bomb_{target}_seconds"] = round(reply.elapsed.total_seconds(), 2)
    return figures


def header_limits(stack: Stack, outcome: Outcome, header_bytes: int) -> dict[str, Any]:
    """A ``header_bytes`` header and a 1 MiB request line to both HTTP servers: 431 / 400, quickly."""
    figures: dict[str, Any] = {"header_bytes": header_bytes}
    for target, base in (("modelserver", stack.rest_url), ("gateway", stack.gateway_url)):
        netloc = urlsplit(base).netloc
        cases = (
            ("header", b"GET /v1/models/housing HTTP/1.1\r\nHost: " + netloc.encode() + b"\r\nX-Big: ", 431),
            ("request line", b"GET /v1/models/" + b"a" * (1 << 20) + b" HTTP/1.1\r\n", 400),
        )
        for name, head, expected in cases:
            filler = (b"a" * 65536 for _ in range(header_bytes // 65536)) if name == "header" else iter(())
            pid = stack.pids()[target]
            with (
                Neighbour(
                    f"{stack.gateway_url}{HOUSING}", {"records": [{"median_income": 3.0}]}
                ) as neighbour,
                peak_rss(pid) as found,
            ):
                status, body, seconds = raw_http(base, head, filler)
            outcome.check(
                status == expected, f"{target} {name}: got {status} {body[:120]!r}, expected {expected}"
            )
            outcome.check(
                growth(found) <= RSS_BOUND_BYTES,
                f"{target} {name}: anonymous RSS grew {growth(found) >> 20} MiB",
            )
            outcome.check(
                neighbour.failures == 0, f"{target} {name}: {neighbour.failures} neighbour calls failed"
            )
            key = f"{target}_{name.replace(' ', '_')}"
            figures[f"{key}_status"] = status
            figures[f"{key}_seconds"] = round(seconds, 2)
            figures[f"{key}_neighbour_worst_ms"] = neighbour.worst_ms
    return figures


def streamed_body(stack: Stack, outcome: Outcome, body_bytes: int) -> dict[str, Any]:
    """``body_bytes`` of JSON (chunked, no Content-Length) and a declared one, to the gateway: 413 while it
    streams; also a multipart upload over the limit."""
    netloc = urlsplit(stack.gateway_url).netloc.encode()
    pid = stack.pids()["gateway"]
    figures: dict[str, Any] = {"streamed_body_mib": body_bytes >> 20}

    def chunked(first: bytes) -> Iterator[bytes]:
        piece = first + b"a" * 65000
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
        chunk = b"a" * 65536
        for _ in range(body_bytes // 65536):
            yield b"%x\r\n%s\r\n" % (len(chunk), chunk)

    for name, head, body in (
        (
            "chunked JSON",
            b"POST /v1/models/text:classify HTTP/1.1\r\nHost: "
            + netloc
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunked(b'{"texts": ["'),
        ),
        (
            "multipart",
            b"POST /v1/models/fashion:classify HTTP/1.1\r\nHost: "
            + netloc
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunked(b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'),
        ),
        (
            "multipart part header",
            b"POST /v1/models/fashion:classify HTTP/1.1\r\nHost: "
            + netloc
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunked(b'--b\r\nContent-Disposition: form-data; name="file"; filename="'),
        ),
    ):
        with peak_rss(pid) as found:
            status, reply, seconds = raw_http(stack.gateway_url, head, body)
        expected = 400 if name == "multipart part header" else 413
        outcome.check(
            status == expected,
            f"gateway {name} of {body_bytes >> 20} MiB: got {status} {reply[:120]!r}, expected {expected}",
        )
        outcome.check(
            growth(found) <= RSS_BOUND_BYTES, f"gateway {name}: anonymous RSS grew {growth(found) >> 20} MiB"
        )
        key = name.replace(" ", "_")
        figures[f"{key}_status"] = status
        figures[f"{key}_rss_mib"] = round(growth(found) / 2**20, 1)
        figures[f"{key}_seconds"] = round(seconds, 2)
    return figures


def slow_clients(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """Headers sent a byte a second, a connection that sends nothing, a body that stalls: each is closed
    with 408 after its timeout (2 s / 3 s here) while other clients are served."""
    figures: dict[str, Any] = {"header_timeout_s": HEADER_TIMEOUT, "body_timeout_s": BODY_TIMEOUT}
    for target, base in (("modelserver", stack.rest_url), ("gateway", stack.gateway_url)):
        netloc = urlsplit(base).netloc.encode()

        def trickle() -> Iterator[bytes]:
            for _ in range(60):
                time.sleep(0.5)
                yield b"X-Slow: 1\r\n"

        def stall() -> Iterator[bytes]:
            yield b'{"instances": ['  # then nothing: the read below waits for the server to give up

        path = FASHION_REST if target == "modelserver" else "/v1/models/text:classify"
        for name, head, body, limit in (
            (
                "slow headers",
                b"GET /v1/models/housing HTTP/1.1\r\nHost: " + netloc + b"\r\n",
                trickle(),
                HEADER_TIMEOUT,
            ),
            ("silent connection", b"", iter(()), HEADER_TIMEOUT),
            (
                "stalled body",
                b"POST "
                + path.encode()
                + b" HTTP/1.1\r\nHost: "
                + netloc
                + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                stall(),
                BODY_TIMEOUT,
            ),
        ):
            status, _, seconds = raw_http(base, head, body, read_timeout=limit * 10)
            ok = status in (408, 0) and seconds < limit * 6
            outcome.check(ok, f"{target} {name}: held {seconds:.1f} s (status {status}); timeout {limit} s")
            figures[f"{target}_{name.replace(' ', '_')}_closed_after_s"] = round(seconds, 1)
    return figures


def log_amplification(stack: Stack, outcome: Outcome, aborted: int) -> dict[str, Any]:
    """Corrupt gRPC messages and aborted uploads: at most one log line each, rate-limited, no traceback."""
    before = {name: len(lines) for name, lines in log_lines(stack).items()}
    with grpc.insecure_channel(stack.grpc_target) as channel:
        call = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        codes = set()
        for payload in (b"\x0a\xff", b"\xff\xff", b"\x12\x05\x0a\x03abc\xff"):
            for _ in range(20):
                try:
                    call(payload, timeout=10)
                    codes.add("OK")
                except grpc.RpcError as exc:
                    codes.add(exc.code().name)  # type: ignore[attr-defined]
    for base in (stack.rest_url, stack.gateway_url):  # malformed HTTP: uvicorn warns once per request
        for _ in range(30):
            raw_http(base, b"GARBAGE \x00\x01 HTTP/9.9\r\n\r\n", read_timeout=10)
    netloc = urlsplit(stack.gateway_url).netloc.encode()
    for index in range(aborted):
        head = (
            b"POST /v1/models/fashion:classify HTTP/1.1\r\nHost: "
            + netloc
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
            + b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            + b"\x89PNG" * 100
        )
        parts = urlsplit(stack.gateway_url)
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
            sock.sendall(head)
            if index % 2:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )  # RST
    time.sleep(1.0)
    after = log_lines(stack)
    new = {name: after[name][before.get(name, 0) :] for name in after}
    tracebacks = {name: sum(_TRACEBACK in line for line in lines) for name, lines in new.items()}
    lines = {name: len(lines) for name, lines in new.items()}
    requests = 60 + 60 + aborted
    for name in new:
        outcome.check(tracebacks[name] == 0, f"logs: {tracebacks[name]} tracebacks in the {name} log")
        outcome.check(lines[name] <= 40, f"logs: {lines[name]} {name} log lines for {requests} bad requests")
    outcome.check(not codes & {"OK", "UNKNOWN"}, f"corrupt gRPC messages answered {sorted(codes)}")
    return {
        "log_bad_requests": requests,
        "log_new_lines": lines,
        "log_tracebacks": tracebacks,
        "corrupt_grpc": sorted(codes),
    }


def browser(stack: Stack, outcome: Outcome) -> dict[str, Any]:
    """The console and /docs: CSP with frame-ancestors, nosniff, and /docs assets served locally."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        console = client.get("/")
        docs = client.get("/docs")
        asset = client.get("/docs/assets/swagger-ui-bundle.js")
        api = client.get("/v1/models")
    for name, reply in (("console", console), ("docs", docs), ("API", api)):
        policy = reply.headers.get("content-security-policy", "")
        outcome.check(
            "frame-ancestors 'none'" in policy, f"browser: {name} has no CSP frame-ancestors: {policy!r}"
        )
        outcome.check(
            reply.headers.get("x-content-type-options") == "nosniff", f"browser: {name} lacks nosniff"
        )
    external = [u for u in ("http://", "https://", "//cdn") if u in docs.text.replace(stack.gateway_url, "")]
    outcome.check(
        docs.status_code == 200 and not external, f"browser: /docs {docs.status_code}, external {external}"
    )
    outcome.check(asset.status_code == 200, f"browser: /docs asset {asset.status_code}")
    return {"csp": console.headers.get("content-security-policy", ""), "docs_local": not external}


def ports_guidance(outcome: Outcome, root: Path) -> dict[str, Any]:
    """README says which ports must never be exposed."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    said = "never be exposed" in readme.lower() or "must never be exposed" in readme.lower()
    outcome.check(said, "README does not say which ports must never be exposed")
    return {"readme_ports_guidance": said}


def _gateway_round_2(stack: Stack, outcome: Outcome, quick: bool) -> dict[str, Any]:
    from reliability import gateway_attack  # it builds on this module's helpers

    return gateway_attack.run_steps(stack, outcome, quick=quick)


def run(stack: Stack, *, quick: bool = False) -> Outcome:
    outcome = Outcome("attack", "Independent attack (issue 17)")
    figures: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("grpc", lambda: grpc_tensors(stack, outcome, (16 if quick else 200) << 20)),
        ("oversized", lambda: oversized_message(stack, outcome, 300 << 20) if not quick else {}),
        ("bomb", lambda: decompression_bomb(stack, outcome, (256 if quick else 1024) << 20)),
        ("headers", lambda: header_limits(stack, outcome, (1 if quick else 64) << 20)),
        ("body", lambda: streamed_body(stack, outcome, (32 if quick else 300) << 20)),
        ("slow", lambda: slow_clients(stack, outcome)),
        ("logs", lambda: log_amplification(stack, outcome, 20 if quick else 200)),
        ("browser", lambda: browser(stack, outcome)),
        ("ports", lambda: ports_guidance(outcome, REPO_ROOT)),
        ("gateway round 2", lambda: _gateway_round_2(stack, outcome, quick)),
        ("control", lambda: control_plane(stack, outcome)),  # last: it empties and heals the server
    ]
    for _, step in steps:
        figures.update(step())
    outcome.check(_alive(stack), "a service died during the attack")
    outcome.figures = figures
    return outcome.finish()
