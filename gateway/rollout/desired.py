"""The desired state of every model: TensorFlow Serving's own ``models.config``, shared by every replica and
every gateway, with the gateway's extra state in a header comment of the same file.

File layout (one file, so one atomic write holds both)::

    # tfserve-gateway-state: {"generation": 7, "digest": "<sha256 of the config below>", "models": {...}}
    # (written by the gateway: edit the config below, not this line)
    model_config_list { config { name: "fashion" ... model_version_policy { specific { versions: 3 } }
                                 version_labels { key: "stable" value: 3 } } }

TF Serving's text-proto parser skips ``#`` comments, so every server (the official one included) polls the
same file with ``--model_config_file_poll_wait_seconds``. The header holds, per model, the ``base`` entry (the
operator's own policy, which "back to latest" returns to), the pin, the labels, the rollback history, the
canary and recent events, plus a ``generation`` that grows by one with every write.

Writers (``DesiredStore.transaction``): an asyncio lock inside the process and a POSIX record lock
(``fcntl.lockf``) on ``.<name>.lock`` beside the file across processes and machines (NFSv4 supports it).
The kernel drops the lock when its holder dies, so a crashed gateway never blocks the others. Under the lock
the file is re-read, changed, and replaced atomically: temp file in the same directory, fsync, ``os.replace``,
fsync of the directory; the file keeps its mode so servers running as another user can still read it.

Readers (``DesiredStore.read``) have no side effects. A file that does not parse (another writer broke it)
raises ``DesiredStateInvalid``: the caller keeps its last good state, logs and reports the refusal. A body
edited by another writer (the digest no longer matches) is adopted: every model whose entry changed takes the
edited entry as its new ``base`` and loses its pin, labels and canary (an event records it).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.protobuf import text_format

from gateway.errors import Conflict
from gateway.rollout.answering import live_labels
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = [
    "Canary",
    "Desired",
    "DesiredStateInvalid",
    "DesiredStore",
    "ModelState",
    "Transaction",
    "parse_desired",
    "render_entry",
]

HEADER = "# tfserve-gateway-state: "
NOTE = "# (written by the gateway: edit the config below, not these two lines)"
MAX_HISTORY = 50
MAX_EVENTS = 30
LOCK_WAIT_SECONDS = 120.0
KnownVersions = Callable[[str], "list[int] | None"]


class DesiredStateInvalid(Conflict):
    """The models.config does not parse (or its gateway header is not ours): nothing is changed."""

    kind = "desired_state_invalid"


@dataclass
class Canary:
    """A candidate version next to the stable one: ``weight`` % of requests, ``shadow`` % mirrored."""

    version: int
    stable: int
    weight: float
    shadow: float = 0.0
    status: str = "running"  # starting (its version loading: no traffic yet) | running | rolled_back
    reason: str | None = None


@dataclass
class ModelState:
    base: str  # the operator's ModelConfig entry, text format
    pinned: int | None = None
    labels: dict[str, int] = field(default_factory=dict)
    history: list[int] = field(default_factory=list)
    canary: Canary | None = None
    events: list[dict[str, object]] = field(default_factory=list)

    def event(self, kind: str, **fields: object) -> None:
        self.events = [*self.events, {"time": round(time.time(), 3), "kind": kind, **fields}][-MAX_EVENTS:]

    def remember(self, version: int | None) -> None:
        if version is not None and (not self.history or self.history[-1] != version):
            self.history = [*self.history, version][-MAX_HISTORY:]

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> ModelState:
        data = dict(raw)
        canary = data.pop("canary", None)
        state = cls(**data)  # type: ignore[arg-type]
        state.canary = Canary(**canary) if isinstance(canary, dict) else None
        if not isinstance(state.base, str) or not isinstance(state.labels, dict):
            raise TypeError("base must be text and labels an object")
        return state


@dataclass
class Desired:
    """Every model of one models.config, in file order, and the file's generation."""

    generation: int
    models: dict[str, ModelState]
    adopted: list[str] = field(default_factory=list)  # models whose entry another writer changed
    unconfirmed: dict[str, str] = field(default_factory=dict)  # replica address -> why it did not confirm
    preamble: str = ""  # the operator's own comment lines at the top of the file, kept

    def copy(self) -> Desired:
        return copy.deepcopy(self)


def _base_entry(state: ModelState) -> model_server_config_pb2.ModelConfig:
    entry = model_server_config_pb2.ModelConfig()
    text_format.Parse(state.base, entry)
    return entry


def render_entry(
    state: ModelState, known: list[int] | None = None, omit_labels: frozenset[str] = frozenset()
) -> model_server_config_pb2.ModelConfig:
    """The ModelConfig a server must run for one model: the base entry plus pin and ``live_labels``.

    A label's version must stay loaded (TF Serving only labels AVAILABLE versions): with a pin it joins
    ``specific``; without one, ``latest { num_versions }`` widens to reach it (``known``: versions on disk).
    ``omit_labels`` leaves labels out while their versions load (TF Serving refuses them before).
    """
    entry = _base_entry(state)
    labels = live_labels(state, known)
    if state.pinned is None and not labels:
        return entry
    keep = set(labels.values())
    if state.pinned is not None:
        entry.model_version_policy.Clear()
        entry.model_version_policy.specific.versions.extend(sorted(keep | {state.pinned}))
    elif keep:
        policy = entry.model_version_policy
        if policy.HasField("specific"):
            versions = set(policy.specific.versions) | keep
            policy.specific.ClearField("versions")
            policy.specific.versions.extend(sorted(versions))
        elif not policy.HasField("all"):
            have = policy.latest.num_versions or 1
            ordered = sorted(set(known or []) | keep)
            policy.latest.num_versions = max(have, len([v for v in ordered if v >= min(keep)]))
    entry.ClearField("version_labels")
    for label, version in sorted(labels.items()):
        if label not in omit_labels:
            entry.version_labels[label] = version
    return entry


def render_config(
    desired: Desired,
    known: KnownVersions,
    names: list[str] | None = None,
    omit: dict[str, frozenset[str]] | None = None,
) -> model_server_config_pb2.ModelServerConfig:
    """The ModelServerConfig of ``names`` (default: every model of the file)."""
    config = model_server_config_pb2.ModelServerConfig()
    for name, state in desired.models.items():
        if names is None or name in names:
            entry = render_entry(state, known(name), (omit or {}).get(name, frozenset()))
            config.model_config_list.config.add().CopyFrom(entry)
    return config


def _body(config: model_server_config_pb2.ModelServerConfig) -> str:
    return str(text_format.MessageToString(config))


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def format_desired(desired: Desired, body: str) -> str:
    header = {
        "generation": desired.generation,
        "digest": _digest(desired.preamble + body),
        "models": {name: asdict(state) for name, state in desired.models.items()},
    }
    line = json.dumps(header, separators=(",", ":"), sort_keys=True)
    return f"{HEADER}{line}\n{NOTE}\n{desired.preamble}{body}"


def parse_desired(text: str, known: KnownVersions, where: str = "models.config") -> Desired:
    """Read a models.config: with our header, without (first use: the file is the base), or edited by hand."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise DesiredStateInvalid(
            f"{where} is not a valid TF Serving model config ({exc}); fix the file"
        ) from None
    entries = {c.name: c for c in config.model_config_list.config}
    if len(entries) != len(config.model_config_list.config) or "" in entries:
        raise DesiredStateInvalid(f"{where}: every model needs a name, and names must differ; fix the file")
    lines = text.splitlines()
    top = lines[: next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))]
    preamble = "".join(f"{ln}\n" for ln in top if not ln.startswith(HEADER) and ln != NOTE)
    line = next((ln for ln in top if ln.startswith(HEADER)), None)
    if line is None:
        models = {n: ModelState(base=text_format.MessageToString(c)) for n, c in entries.items()}
        return Desired(0, models, preamble=preamble)
    try:
        header = json.loads(line[len(HEADER) :])
        generation = int(header["generation"])
        saved = {n: ModelState.from_json(v) for n, v in header["models"].items()}
        digest = str(header["digest"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DesiredStateInvalid(
            f"{where}: the gateway header line is damaged ({exc}); fix the file"
        ) from None
    body = text[text.index(NOTE) + len(NOTE) + 1 :] if NOTE in text else ""
    desired = Desired(generation, {}, preamble=preamble)
    for name, entry in entries.items():
        state = saved.get(name)
        if state is not None and (_digest(body) == digest or render_entry(state, known(name)) == entry):
            desired.models[name] = state
            continue
        fresh = ModelState(base=text_format.MessageToString(entry), history=state.history if state else [])
        if state is not None:
            fresh.event("edited", reason="another writer changed this model's entry; adopted it")
            desired.adopted.append(name)
        desired.models[name] = fresh
    return desired


class Transaction:
    """The state read under the lock; ``commit`` writes it back with the next generation."""

    def __init__(self, store: DesiredStore, desired: Desired) -> None:
        self.store = store
        self.desired = desired

    def commit(self, desired: Desired, omit: dict[str, frozenset[str]] | None = None) -> Desired:
        desired.generation = self.desired.generation + 1
        desired.adopted = []
        desired.unconfirmed = {}
        try:
            self.store._write(desired, omit)
        except OSError as exc:
            raise Conflict(f"cannot write {self.store.path.name}: {exc.strerror}") from None
        self.desired = desired.copy()
        return desired


class DesiredStore:
    """One models.config file: side-effect-free reads, locked atomic read-modify-write (module docstring)."""

    def __init__(self, path: Path, known: KnownVersions) -> None:
        self.path = path
        self._known = known
        self._lock = asyncio.Lock()
        self._cache: tuple[tuple[int, int, int], Desired] | None = None
        self.last_good: Desired | None = None
        self.error: str | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def read(self) -> Desired:
        """The file's state now (re-parsed only when the file changed). Raises DesiredStateInvalid."""
        try:
            stat = self.path.stat()
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1].copy()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DesiredStateInvalid(f"cannot read {self.path.name}: {exc.__class__.__name__}") from None
        desired = parse_desired(text, self._known, self.path.name)
        self._cache = (key, desired)
        return desired.copy()

    def current(self) -> Desired | None:
        """The file's state, or the last good one when it does not parse (``error`` says why)."""
        try:
            desired = self.read()
        except DesiredStateInvalid as exc:
            self.error = exc.message
            return self.last_good.copy() if self.last_good else None
        self.error = None
        self.last_good = desired
        return desired

    @contextlib.asynccontextmanager
    async def locked(self, wait: bool = True) -> AsyncIterator[bool]:
        """Hold the cluster-wide lock of this file. ``wait=False`` yields False at once when it is busy;
        waiting gives up with Conflict after ``LOCK_WAIT_SECONDS``."""
        if not wait and (self._lock.locked() or not self.path.exists()):
            # busy, or no file to repair from: the background reconciler never creates the lock file in a
            # folder whose models.config is gone (e.g. an unmounted volume's empty mount point)
            yield False
            return
        async with self._lock:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if wait:
                    raise Conflict(
                        f"cannot lock {self.path.name} ({exc.strerror}): the gateway needs write access to "
                        "the folder of its models.config"
                    ) from None
                yield False
                return
            try:
                held = await _lock(fd, LOCK_WAIT_SECONDS if wait else 0.0)
                if not held and wait:
                    raise Conflict(f"another gateway holds the lock of {self.path.name} too long; try again")
                yield held
            finally:
                os.close(fd)  # closing drops the record lock

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Hold the lock and read the file fresh (DesiredStateInvalid when it does not parse)."""
        async with self.locked():
            yield Transaction(self, self.read())

    def _write(self, desired: Desired, omit: dict[str, frozenset[str]] | None) -> None:
        body = _body(render_config(desired, self._known, omit=omit))
        text = format_desired(desired, body)
        directory = self.path.resolve().parent
        try:
            mode = self.path.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._cache = None
        self.last_good = desired.copy()
        self.error = None


async def _lock(fd: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
