"""Where a server spends its time under load: py-spy samples a running server (by pid, without pausing it)
and the collapsed stacks are summarised as the functions that dominate, by own time and by inclusive time.

Contract: ``profile(pid, seconds, out)`` returns a ``Profile`` (empty with a reason when py-spy is missing or
cannot attach); it never raises, since a profile only explains a figure and must not stop the run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Profile", "profile", "summarise"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")
# Leaf frames where a thread only waits (py-spy cannot always tell idle threads when not pausing the process).
_IDLE = {
    "wait",
    "select",
    "get",
    "acquire",
    "sleep",
    "poll",
    "_worker",
    "Thread.run",
    "_wait_for_tstate_lock",
}
_ENTRY = {"main", "run", "<module>", "Runner.run", "_run_code", "_run_module_as_main"}


@dataclass
class Profile:
    target: str
    samples: int = 0
    busy: int = 0  # samples not waiting
    own: list[tuple[str, float]] = field(default_factory=list)  # (frame, share of busy samples)
    inclusive: list[tuple[str, float]] = field(default_factory=list)  # non-stdlib frames only
    error: str = ""


# The stack's own packages are shown from their top folder (modelserver/runtime/tensors.py), others by
# their last two parts.
_PACKAGES = frozenset({"modelserver", "gateway", "guard", "export", "tfs_protos", "oip_protos"})


def _frame(text: str) -> tuple[str, bool]:
    """``func (pkg/module.py:123)`` -> (``func (pkg/module.py)``, whether it is standard library code)."""
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), False
    func, path = match["func"], match["path"]
    parts = path.split("/")
    top = parts[0].removesuffix(".py")
    stdlib = path.startswith("<frozen") or top in sys.stdlib_module_names
    ours = next((i for i, part in enumerate(parts) if part in _PACKAGES), len(parts) - 2)
    return f"{func} ({'/'.join(parts[max(ours, 0) :])})", stdlib


def summarise(raw: str, target: str, top: int = 8) -> Profile:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = busy = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaf = frames[-1][0].split(" (")[0]
        if leaf in _IDLE or leaf.rsplit(".", 1)[-1] in _IDLE:
            continue
        busy += count
        own[frames[-1][0]] += count
        for name in {name for name, stdlib in frames if not stdlib and name.split(" (")[0] not in _ENTRY}:
            inclusive[name] += count
    result = Profile(target, samples=total, busy=busy)
    if busy:
        result.own = [(name, n / busy) for name, n in own.most_common(top)]
        result.inclusive = [(name, n / busy) for name, n in inclusive.most_common(top)]
    return result


def profile(pid: int, seconds: float, out: Path, target: str) -> Profile:
    """Sample the Python stacks of ``pid`` for ``seconds`` without pausing it (``--nonblocking``).
    Native frames (``--native``) were tried: they need pauses and bury the picture in libc waits."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return Profile(target, error="py-spy is not installed (pip install '.[bench]')")
    base = [
        exe,
        "record",
        "-p",
        str(pid),
        "-d",
        f"{max(1, round(seconds))}",
        "-r",
        "100",
        "-f",
        "raw",
        "-o",
        str(out),
    ]
    error = ""
    for extra in (["--nonblocking"],):
        out.unlink(missing_ok=True)
        try:
            done = subprocess.run(
                base + extra, capture_output=True, text=True, timeout=seconds + 60, check=False
            )
        except subprocess.TimeoutExpired:
            error = "py-spy did not finish"
            continue
        if done.returncode == 0 and out.exists():
            return summarise(out.read_text(), target)
        error = ((done.stderr or done.stdout).strip().splitlines() or ["py-spy failed"])[0][:200]
    return Profile(target, error=error)
