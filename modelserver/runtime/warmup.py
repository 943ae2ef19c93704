"""SavedModel warm-up: replay ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of ``PredictionLog``)
against a freshly loaded version before it serves, as TF Serving's ``saved_model_warmup_util.cc`` does.

Predict, Classify, Regress and MultiInference records are replayed ``num_request_iterations`` times (at least
once); more than 1000 records, an unreadable file or a failing request fail the load. Each record is answered
by ``modelserver.runtime.execution``, the code that answers clients' requests (same checks, messages and replies),
on the version being loaded - it is not available yet, so no client request can reach it, and warm-up calls
are not counted in the request metrics. Warm-up runs inline in the loader's thread, not through the batcher
and without the per-request limits (the records come with the model, not from a client).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from modelserver.errors import InvalidArgument, ServingError
from modelserver.runtime.execution import Execution
from modelserver.runtime.limits import RequestLimits
from modelserver.runtime.runner import Runner
from modelserver.runtime.servable import DEFAULT_SIGNATURE, Servable
from modelserver.runtime.tfrecord import TooManyRecords, read_records
from tfs_protos.tensorflow_serving.apis import prediction_log_pb2

__all__ = ["MAX_WARMUP_RECORDS", "WARMUP_FILE", "WarmupOptions", "replay_warmup"]

log = logging.getLogger("modelserver.warmup")

MAX_WARMUP_RECORDS = 1000  # WarmupConsts::kMaxNumRecords
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
_UNBOUNDED = RequestLimits(max_elements=0, max_bytes=0, max_batch_size=0)


@dataclass(frozen=True)
class WarmupOptions:
    enabled: bool = True
    num_request_iterations: int = 0
    method_name_check: bool = False
    # TF Lite versions: records for a signature the version does not have are skipped, not failed (the export
    # writes classify/regress records that only its SavedModel has; TF Serving would fail the load).
    skip_unknown_signatures: bool = False


def _signatures_of(record: prediction_log_pb2.PredictionLog) -> list[str]:
    """The signatures a record asks for (an empty name is serving_default)."""
    kind = record.WhichOneof("log_type")
    if kind in ("predict_log", "classify_log", "regress_log"):
        names = [getattr(record, kind).request.model_spec.signature_name]
    elif kind == "multi_inference_log":
        names = [task.model_spec.signature_name for task in record.multi_inference_log.request.tasks]
    else:
        names = []
    return [name or DEFAULT_SIGNATURE for name in names]


async def _replay(execution: Execution, servable: Servable, record: prediction_log_pb2.PredictionLog) -> None:
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        await execution.predict(servable, record.predict_log.request)
    elif kind == "classify_log":
        await execution.classify(servable, record.classify_log.request)
    elif kind == "regress_log":
        await execution.regress(servable, record.regress_log.request)
    elif kind == "multi_inference_log":
        await execution.multi_inference(servable, record.multi_inference_log.request)
    else:
        raise InvalidArgument(f"Unsupported log_type for warmup: {kind}")


def replay_warmup(servable: Servable, options: WarmupOptions) -> int:
    """Replay the version's warm-up file if it has one; return the number of requests run. Blocks (the
    loader's worker thread; no event loop may be running in the calling thread)."""
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return 0
    try:
        records = [
            prediction_log_pb2.PredictionLog.FromString(raw)
            for raw in read_records(path, max_records=MAX_WARMUP_RECORDS)
        ]
    except TooManyRecords:
        raise InvalidArgument(
            f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
        ) from None
    except Exception as exc:
        raise InvalidArgument(f"Failed to read warmup requests from {path}: {exc}") from None
    if options.skip_unknown_signatures:
        kept = [r for r in records if all(n in servable.signature_defs for n in _signatures_of(r))]
        if len(kept) < len(records):
            log.info(
                "%s: %d warm-up records skipped (signatures this version lacks)",
                path,
                len(records) - len(kept),
            )
        records = kept
    execution = Execution(Runner.inline(), _UNBOUNDED, options.method_name_check)
    iterations = max(1, options.num_request_iterations)

    async def replay_all() -> None:
        for index, record in enumerate(records):
            for _ in range(iterations):
                try:
                    await _replay(execution, servable, record)
                except ServingError as exc:
                    raise ServingError(
                        f"Warmup request {index} in {path} failed: {exc.message}", code=exc.code
                    ) from None

    asyncio.run(replay_all())
    return len(records) * iterations
