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

_FRAME_LINE = re.compile(r":\d+\)$")


@dataclass
class Profile:
    target: str
    samples: int = 0
    own: list[tuple[str, float]] = field(default_factory=list)  # (frame, share of samples)
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


def _frame(text: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: aggregate lines of one function."""
    text = _FRAME_LINE.sub(")", text.strip())
    if " (" in text:
        name, path = text.split(" (", 1)
        return f"{name} ({Path(path.rstrip(')')).name})"
    return text


def summarise(raw: str, target: str, top: int = 8) -> Profile:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    result = Profile(target, samples=total)
    if total:
        result.own = [(name, n / total) for name, n in own.most_common(top)]
        skip = (
            "<module>",
            "run (",
            "_bootstrap",
            "_run_once",
            "run_forever",
            "run_until_complete",
            "worker (",
        )
        result.inclusive = [
            (name, n / total) for name, n in inclusive.most_common(top * 4) if not name.startswith(skip)
        ][:top]
    return result


def profile(pid: int, seconds: float, out: Path, target: str) -> Profile:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return Profile(target, error="py-spy is not installed (pip install '.[bench]')")
    argv = [
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
        "--nonblocking",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired:
        return Profile(target, error="py-spy did not finish")
    if done.returncode != 0 or not out.exists():
        return Profile(target, error=(done.stderr or done.stdout).strip().splitlines()[0][:200])
    return summarise(out.read_text(), target)
