"""What the Open Inference Protocol's binary data extension saves against JSON, on the modelserver's REST port
(``make bench-oip``; ~1 min plus a small fashion export when ``models/fashion`` is absent).

Two payloads: a batch of 32 Fashion-MNIST images (``fashion``, FP32 [32,28,28,1]) and one 224x224x3 float
tensor (a tiny ``image224`` model: per-channel means). Each is sent, in the same run to the same server, as
OIP JSON, OIP binary (``Inference-Header-Content-Length``, binary outputs too) and - the baseline TF Serving
users have today - TF Serving's REST JSON (``:predict`` with ``inputs``). Figures per case: request and
reply bytes on the wire (bodies), client encode+decode time, and request latency (median, p90) and
throughput of one sequential client over keep-alive, after a warm-up. Every reply is checked against the
others (same outputs) before anything is timed. Results: ``bench/results/oip-binary.{json,md,png}``.

    .venv/bin/python -m bench.oip_binary [--seconds 5] [--models-dir models]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from bench.payloads import fashion_images
from bench.procs import ServerProcess, free_port, http_get

__all__ = ["main", "measure"]

HEADER = "Inference-Header-Content-Length"
RESULTS = Path(__file__).resolve().parent / "results"
Encoded = tuple[str, bytes, dict[str, str]]  # (path, body, headers)


def _tiny_image_model(path: Path) -> Path:
    import tensorflow as tf

    class Image224(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32, name="image")])
        def serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"channel_mean": tf.reduce_mean(image, axis=[1, 2])}

    module = Image224()
    tf.saved_model.save(module, str(path / "1"), signatures={"serving_default": module.serve})
    return path


def _fashion_model(models_dir: Path, work: Path, data_dir: Path) -> Path:
    existing = sorted(
        (p for p in (models_dir / "fashion").glob("[0-9]*") if p.is_dir()), key=lambda p: int(p.name)
    )
    if existing:
        return existing[-1].parent
    from export.api import export_model  # a small slice, one epoch: the bench measures I/O, not accuracy

    export_model("fashion", work, version=1, epochs=1, limit=1000, data_dir=data_dir)
    return work / "fashion"


def _oip_json(model: str, name: str, array: np.ndarray) -> Encoded:
    body = {
        "inputs": [
            {"name": name, "datatype": "FP32", "shape": list(array.shape), "data": array.ravel().tolist()}
        ]
    }
    return f"/v2/models/{model}/infer", orjson.dumps(body), {"Content-Type": "application/json"}


def _oip_binary(model: str, name: str, array: np.ndarray) -> Encoded:
    raw = np.ascontiguousarray(array, "<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": "FP32",
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    headers = {HEADER: str(len(header)), "Content-Type": "application/octet-stream"}
    return f"/v2/models/{model}/infer", header + raw, headers


def _tfserving_json(model: str, name: str, array: np.ndarray) -> Encoded:
    body = orjson.dumps({"inputs": {name: array.tolist()}})
    return f"/v1/models/{model}:predict", body, {"Content-Type": "application/json"}


def _decode(encoding: str, reply: httpx.Response) -> np.ndarray:
    if encoding == "tfserving_json":
        return np.asarray(orjson.loads(reply.content)["outputs"], np.float32)
    length = int(reply.headers.get(HEADER, len(reply.content)))
    document = orjson.loads(reply.content[:length])
    (output,) = document["outputs"]
    if "data" in output:
        return np.asarray(output["data"], np.float32).reshape(output["shape"])
    return np.frombuffer(reply.content[length:], "<f4").reshape(output["shape"])


ENCODINGS: dict[str, Callable[[str, str, np.ndarray], Encoded]] = {
    "oip_json": _oip_json,
    "oip_binary": _oip_binary,
    "tfserving_json": _tfserving_json,
}


def _median_seconds(call: Callable[[], Any], repeat: int = 5) -> float:
    """Client-side encode or decode time: the median of a few runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _timed(seconds: float, call: Callable[[], Any]) -> list[float]:
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and len(latencies) < 100_000:
        begin = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - begin)
    return latencies


ROUNDS = 5  # encodings alternate in rounds, so a load change on the shared machine hits them alike


def measure(url: str, payloads: dict[str, tuple[str, str, np.ndarray]], seconds: float) -> dict[str, Any]:
    """Figures per payload and encoding; raises if two encodings disagree on the outputs."""
    results: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for label, (model, name, array) in payloads.items():
            answers: dict[str, np.ndarray] = {}
            cases: dict[str, Any] = {}
            calls: dict[str, Callable[[], Any]] = {}
            for encoding, encode in ENCODINGS.items():
                path, body, headers = encode(model, name, array)
                reply = client.post(path, content=body, headers=headers)
                reply.raise_for_status()
                answers[encoding] = _decode(encoding, reply)
                calls[encoding] = lambda p=path, b=body, h=headers: client.post(p, content=b, headers=h)
                for _ in range(5):  # warm
                    calls[encoding]()
                cases[encoding] = {
                    "request_bytes": len(body),
                    "reply_bytes": len(reply.content),
                    "client_encode_ms": _median_seconds(lambda e=encode, m=model, n=name, a=array: e(m, n, a))
                    * 1000,
                    "client_decode_ms": _median_seconds(lambda e=encoding, r=reply: _decode(e, r)) * 1000,
                }
            reference = answers["tfserving_json"]
            for encoding, answer in answers.items():
                np.testing.assert_allclose(answer, reference, rtol=1e-6, err_msg=f"{label}: {encoding}")
            latencies: dict[str, list[float]] = {encoding: [] for encoding in ENCODINGS}
            for round_ in range(ROUNDS):
                for encoding, call in calls.items():
                    latencies[encoding] += _timed(seconds / ROUNDS, call)
                print(f"  {label}: round {round_ + 1}/{ROUNDS}", file=sys.stderr, flush=True)
            for encoding, times in latencies.items():
                cases[encoding].update(
                    requests=len(times),
                    latency_ms_p50=statistics.median(times) * 1000,
                    latency_ms_p90=float(np.percentile(times, 90)) * 1000,
                    requests_per_s=len(times) / sum(times),
                )
            json_case, binary_case = cases["oip_json"], cases["oip_binary"]
            cases["ratios_json_over_binary"] = {
                "request_bytes": json_case["request_bytes"] / binary_case["request_bytes"],
                "reply_bytes": json_case["reply_bytes"] / binary_case["reply_bytes"],
                "latency_p50": json_case["latency_ms_p50"] / binary_case["latency_ms_p50"],
                "throughput": binary_case["requests_per_s"] / json_case["requests_per_s"],
            }
            results[label] = {"shape": list(array.shape), **cases}
    return results


def _markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# OIP binary data vs JSON (modelserver REST port)",
        "",
        f"{meta['date']}, {meta['seconds']} s per case in {ROUNDS} alternating rounds, one sequential client over keep-alive on 127.0.0.1, "
        f"{meta['cpus']} CPUs (shared). Client encode+decode: median of 5. Generated by `make bench-oip` "
        "(bench/oip_binary.py); picture: oip-binary.png.",
        "",
        "| payload | encoding | request bytes | reply bytes | client enc+dec ms | p50 ms | p90 ms | req/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, cases in results.items():
        for encoding in ENCODINGS:
            c = cases[encoding]
            lines.append(
                f"| {label} {cases['shape']} | {encoding} | {c['request_bytes']:,} | {c['reply_bytes']:,} | "
                f"{c['client_encode_ms'] + c['client_decode_ms']:.1f} | {c['latency_ms_p50']:.2f} | "
                f"{c['latency_ms_p90']:.2f} | {c['requests_per_s']:.1f} |"
            )
    lines += ["", "Ratios measured in the same run (OIP JSON / OIP binary; throughput binary / JSON):", ""]
    for label, cases in results.items():
        r = cases["ratios_json_over_binary"]
        lines.append(
            f"- {label}: request bytes {r['request_bytes']:.2f}x, reply bytes {r['reply_bytes']:.2f}x, "
            f"p50 latency {r['latency_p50']:.2f}x, throughput {r['throughput']:.2f}x"
        )
    return "\n".join(lines) + "\n"


def _picture(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    encodings = list(ENCODINGS)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    width = 0.8 / len(encodings)
    panels = [
        (
            "bytes on the wire (request + reply), KiB",
            lambda c: (c["request_bytes"] + c["reply_bytes"]) / 1024,
            True,
        ),
        ("request latency p50, ms", lambda c: c["latency_ms_p50"], False),
        ("throughput, requests/s (1 client)", lambda c: c["requests_per_s"], False),
    ]
    for axis, (title, value, log) in zip(axes, panels, strict=True):
        for i, encoding in enumerate(encodings):
            xs = [j + i * width for j in range(len(labels))]
            ys = [value(results[label][encoding]) for label in labels]
            bars = axis.bar(xs, ys, width, label=encoding)
            axis.bar_label(bars, fmt="%.3g", fontsize=7)
        axis.set_xticks([j + width for j in range(len(labels))], labels)
        axis.set_title(title, fontsize=10)
        if log:
            axis.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Open Inference Protocol: binary data extension vs JSON (and TF Serving REST JSON)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per case")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "../shared/data")))
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-oip-") as tmp:
        work = Path(tmp)
        fashion = _fashion_model(args.models_dir, work, args.data_dir)
        image224 = _tiny_image_model(work / "image224")
        config = work / "models.config"
        config.write_text(
            "model_config_list {\n"
            + "".join(
                f'  config {{ name: "{n}" base_path: "{p.resolve()}" model_platform: "tensorflow" }}\n'
                for n, p in (("fashion", fashion), ("image224", image224))
            )
            + "}\n"
        )
        grpc_port, rest_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "modelserver",
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            "--bind_host=127.0.0.1",
            f"--model_config_file={config}",
        ]
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        ready_url = f"http://127.0.0.1:{rest_port}/v2/health/ready"
        server = ServerProcess(
            argv,
            name="modelserver",
            log_path=work / "modelserver.log",
            env=env,
            ready=lambda: http_get(ready_url)[0] == 200,
            startup_timeout=180,
        )
        with server:
            images = fashion_images(args.data_dir, 32).astype(np.float32)[..., None] / 255.0
            tensor = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
            payloads = {
                "fashion-32": ("fashion", "image", images),
                "float-224x224x3": ("image224", "image", tensor),
            }
            results = measure(f"http://127.0.0.1:{rest_port}", payloads, args.seconds)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "oip-binary.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    (args.results_dir / "oip-binary.md").write_text(_markdown(results, meta))
    _picture(results, args.results_dir / "oip-binary.png")
    print(_markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
