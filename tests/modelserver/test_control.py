"""modelserver.control: who may call HandleReloadConfigRequest, and which base paths it may name."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from modelserver.control import ModelControl, default_roots
from modelserver.errors import PermissionDenied, Unauthenticated

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (),
        (("authorization", "Bearer wrong-token-0123456789abcde"),),
        (("authorization", f"Basic {TOKEN}"),),
        (("authorization", f"Bearer {TOKEN[:-1]}"),),
        (("authorization", f"Bearer {TOKEN}x"),),
        (("x-token", TOKEN),),
    ],
)
def test_a_missing_or_wrong_token_is_unauthenticated(metadata: object) -> None:
    with pytest.raises(Unauthenticated, match="authorization: Bearer"):
        ModelControl(token=TOKEN).authorize(metadata)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["authorization", "Authorization"])
def test_the_right_token_passes(key: str) -> None:
    ModelControl(token=TOKEN).authorize(((key, f"Bearer {TOKEN}"),))
    ModelControl(token=TOKEN).authorize(((key, f"bearer {TOKEN}".encode()),))


def test_no_token_configured_asks_for_none() -> None:
    ModelControl().authorize(None)


def test_reload_can_be_turned_off() -> None:
    with pytest.raises(PermissionDenied, match="--enable_model_config_reload=false"):
        ModelControl(token=TOKEN, reload_enabled=False).authorize((("authorization", f"Bearer {TOKEN}"),))


def test_base_paths_stay_under_the_allowed_roots(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    (repo / "fashion").mkdir(parents=True)
    (tmp_path / "escape").symlink_to("/etc")
    (repo / "link").symlink_to("/etc")
    control = ModelControl(allowed_roots=default_roots([repo / "fashion"]))
    assert control.allowed_roots == (repo.resolve(),)
    control.check_entries({"ok": SimpleNamespace(base_path=repo / "new_model")})
    for outside in ("/etc", "/tmp", tmp_path / "escape", repo / "link", repo / ".." / "x", tmp_path):
        with pytest.raises(PermissionDenied, match="outside the model roots"):
            control.check_entries({"m": SimpleNamespace(base_path=Path(outside))})


def test_a_model_at_the_filesystem_top_is_its_own_root() -> None:
    assert default_roots([Path("/models")]) == (Path("/models"),)
