"""gateway.rollout.desired: the config rendered from the desired state, the models.config header round trip, atomic
writes, refusing a broken file, adopting another writer's edit, and the cluster-wide lock across processes.

(Applying it to real replicas is covered end to end in test_cluster_e2e.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf import text_format

from devtools.procs import REPO_ROOT
from gateway.errors import Conflict
from gateway.rollout.answering import answering_version, live_labels
from gateway.rollout.catalog import Catalog
from gateway.rollout.desired import (
    Canary,
    Desired,
    DesiredStateInvalid,
    DesiredStore,
    ModelState,
    parse_desired,
    render_entry,
)
from gateway.settings import Settings
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

CONFIG = """model_config_list {
  config { name: "a" base_path: "%(root)s/a" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 1 } } }
  config { name: "b" base_path: "%(root)s/b" model_platform: "tensorflow" }
}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    for name, versions in {"a": (1, 2, 3), "b": (5,)}.items():
        for v in versions:
            (tmp_path / name / str(v)).mkdir(parents=True)
    (tmp_path / "a" / ".tmp-4-x").mkdir()
    path = tmp_path / "models.config"
    path.write_text(CONFIG % {"root": tmp_path})
    path.chmod(0o644)
    return path


@pytest.fixture
def store(config: Path) -> DesiredStore:
    return Catalog(Settings(model_config_file=config)).stores[0]


def _entries(path: Path) -> dict[str, model_server_config_pb2.ModelConfig]:
    parsed = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), parsed)  # what TF Serving reads: the header is a comment
    return {c.name: c for c in parsed.model_config_list.config}


def test_a_file_without_header_is_the_base(store: DesiredStore) -> None:
    desired = store.read()
    assert desired.generation == 0 and list(desired.models) == ["a", "b"]
    assert desired.models["a"].pinned is None and "latest" in desired.models["a"].base


def test_pin_renders_specific_with_label_versions() -> None:
    state = ModelState(base='name: "a" base_path: "/m/a"', pinned=2, labels={"stable": 1})
    entry = render_entry(state)
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1}
    pending = render_entry(state, omit_labels=frozenset({"stable"}))
    assert not pending.version_labels and list(pending.model_version_policy.specific.versions) == [1, 2]


def test_labels_without_pin_widen_latest() -> None:
    state = ModelState(
        base='name: "a" model_version_policy { latest { num_versions: 1 } }', labels={"old": 1}
    )
    assert render_entry(state, known=[1, 2, 3]).model_version_policy.latest.num_versions == 3


BASE = 'name: "a" base_path: "/m/a"'


@pytest.mark.parametrize(
    ("state", "known", "answering", "live", "loaded"),
    [
        # the issue-24 sequences: a label above the pin would answer every request naming no version
        (ModelState(BASE, pinned=1, labels={"stable": 2}), [1, 2], 1, {}, [1]),
        (ModelState(BASE, pinned=1, labels={"beta": 2, "old": 1}), [1, 2], 1, {"old": 1}, [1]),
        (ModelState(BASE, pinned=2, labels={"old": 1}), [1, 2], 2, {"old": 1}, [1, 2]),
        # a running (or starting) canary is loaded above the pin: the gateway names its versions
        (
            ModelState(BASE, pinned=1, labels={"stable": 1, "canary": 2}, canary=Canary(2, 1, 10.0)),
            [1, 2],
            1,
            {"stable": 1, "canary": 2},
            [1, 2],
        ),
        (
            ModelState(BASE, pinned=1, labels={"canary": 2}, canary=Canary(2, 1, 10.0, status="starting")),
            [1, 2],
            1,
            {"canary": 2},
            [1, 2],
        ),
        # a rolled-back canary is unloaded: only the stable version answers
        (
            ModelState(BASE, pinned=1, labels={"canary": 3}, canary=Canary(3, 1, 0.0, status="rolled_back")),
            [1, 2, 3],
            1,
            {},
            [1],
        ),
        # unpinned: the top of the operator's own policy answers
        (
            ModelState(BASE + " model_version_policy { specific { versions: 2 } }", labels={"x": 3}),
            [1, 2, 3],
            2,
            {},
            [2],
        ),
        (ModelState(BASE, labels={"old": 1}), [1, 2, 3], 3, {"old": 1}, None),
    ],
)
def test_nothing_above_the_answering_version_is_loaded(
    state: ModelState, known: list[int], answering: int, live: dict[str, int], loaded: list[int] | None
) -> None:
    assert answering_version(state, known) == answering
    assert live_labels(state, known) == live
    entry = render_entry(state, known)
    assert dict(entry.version_labels) == live
    if loaded is not None:
        assert list(entry.model_version_policy.specific.versions) == loaded


def _commit(store: DesiredStore, change: Callable[[Desired], None] = lambda _: None) -> Desired:
    """One admin write: lock, read fresh, change, write the next generation."""

    async def run() -> Desired:
        async with store.transaction() as txn:
            new = txn.desired.copy()
            change(new)
            return txn.commit(new)

    return asyncio.run(run())


def _held(store: DesiredStore) -> bool:
    async def run() -> bool:
        async with store.locked(wait=False) as held:
            return held

    return asyncio.run(run())


LOCK_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gateway.rollout.desired import DesiredStore

    async def main():
        store = DesiredStore(Path(sys.argv[1]), lambda _: None)
        async with store.locked():
            print("locked", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@contextlib.contextmanager
def _another_gateway_holds_the_lock(path: Path) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, cwd=REPO_ROOT, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait(10)


def test_commit_writes_one_file_atomically_with_the_next_generation(
    store: DesiredStore, config: Path
) -> None:
    def change(new: Desired) -> None:
        new.models["a"].pinned, new.models["a"].history = 2, [3]
        new.models["a"].canary = Canary(version=3, stable=2, weight=10.0)

    _commit(store, change)
    assert sorted(p.name for p in config.parent.iterdir() if p.is_file()) == [
        ".models.config.lock",
        "models.config",
    ]  # no temp file left behind
    assert config.stat().st_mode & 0o777 == 0o644  # servers running as another user can still read it
    entry = _entries(config)["a"]
    assert list(entry.model_version_policy.specific.versions) == [2]
    again = parse_desired(config.read_text(), lambda _: None)
    assert again.generation == 1 and again.models["a"].pinned == 2 and again.models["a"].history == [3]
    assert again.models["a"].canary == Canary(version=3, stable=2, weight=10.0)
    assert again.models["b"] == store.read().models["b"]


@pytest.mark.parametrize(
    "text",
    ["improperly formatted file", "model_config_list { config { name: 'a' } config { name: 'a' } }"],
)
def test_a_broken_file_is_refused_and_the_last_good_state_kept(
    store: DesiredStore, config: Path, text: str
) -> None:
    good = store.current()
    config.write_text(text)
    with pytest.raises(DesiredStateInvalid) as caught:
        store.read()
    assert caught.value.status == 409 and "fix the file" in caught.value.message
    assert store.current() == good and store.error


def test_a_damaged_header_is_refused(store: DesiredStore, config: Path) -> None:
    _commit(store)
    config.write_text(config.read_text().replace('"generation":1', '"generation":"x'))
    with pytest.raises(DesiredStateInvalid, match="header"):
        store.read()
    with pytest.raises(DesiredStateInvalid):
        _commit(store)  # an admin change is refused too


def test_an_edit_by_another_writer_is_adopted(store: DesiredStore, config: Path) -> None:
    def change(new: Desired) -> None:
        new.models["a"].pinned = 2
        new.models["b"].pinned = 5

    _commit(store, change)
    config.write_text(config.read_text().replace("versions: 2", "versions: 1"))  # someone pins a to 1
    desired = store.read()
    assert desired.adopted == ["a"]
    assert desired.models["a"].pinned is None and "versions: 1" in desired.models["a"].base
    assert desired.models["a"].events[-1]["kind"] == "edited"
    assert desired.models["b"].pinned == 5  # untouched models keep their state


def test_the_lock_is_cluster_wide_and_dies_with_its_holder(store: DesiredStore, config: Path) -> None:
    with _another_gateway_holds_the_lock(config) as holder:
        assert _held(store) is False  # another process holds it
        holder.kill()  # a crashed gateway
        holder.wait(10)
        assert _held(store) is True


def test_concurrent_transactions_in_one_process_never_lose_an_update(store: DesiredStore) -> None:
    async def bump(version: int) -> None:
        async with store.transaction() as txn:
            new = txn.desired.copy()
            new.models["a"].remember(version)
            await asyncio.sleep(0)
            txn.commit(new)

    async def all_at_once() -> None:
        await asyncio.gather(*(bump(v) for v in range(1, 21)))

    asyncio.run(all_at_once())
    desired = store.read()
    assert desired.generation == 20 and sorted(desired.models["a"].history) == list(range(1, 21))


def test_a_waiting_writer_gives_up_with_conflict(
    store: DesiredStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.rollout.desired

    monkeypatch.setattr(gateway.rollout.desired, "LOCK_WAIT_SECONDS", 0.0)
    with _another_gateway_holds_the_lock(store.path), pytest.raises(Conflict, match="holds the lock"):
        _commit(store)


def test_the_operators_comments_stay_and_an_unchanged_file_is_not_an_edit(
    store: DesiredStore, config: Path
) -> None:
    config.write_text("# who owns this file\n# and why\n" + config.read_text())
    _commit(store)
    _commit(store)
    text = config.read_text()
    assert text.count("# who owns this file\n# and why\n") == 1
    assert store.read().adopted == [] and store.read().generation == 2


def test_the_reconciler_never_creates_a_lock_where_the_file_is_gone(
    store: DesiredStore, config: Path
) -> None:
    """An unmounted volume leaves an empty mount point: the background repair (``wait=False``) must not
    write a lock file there (a remount over it would find the folder not empty)."""
    config.unlink()
    store.lock_path.unlink(missing_ok=True)

    async def repair() -> bool:
        async with store.locked(wait=False) as held:
            return held

    assert asyncio.run(repair()) is False
    assert not store.lock_path.exists()
