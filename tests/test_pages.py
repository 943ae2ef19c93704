"""guard.pages: read-only, never-written file mappings give their pages back; anything that may hold
private data is left alone."""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import pytest

from guard.pages import _mappings, release_file_pages

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 11 /venv/tensorflow/libtensorflow_cc.so.2
Rss:                 512 kB
Anonymous:             0 kB
7f0000100000-7f0000200000 r-xp 00100000 08:01 11 /venv/tensorflow/libtensorflow_cc.so.2
Rss:                1024 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r--p 00200000 08:01 11 /venv/tensorflow/libtensorflow_cc.so.2
Rss:                 256 kB
Anonymous:            64 kB
7f0000300000-7f0000400000 rw-p 00300000 08:01 11 /venv/tensorflow/libtensorflow_cc.so.2
Rss:                 128 kB
Anonymous:             0 kB
7f0000400000-7f0000500000 r-xp 00000000 08:01 12 /usr/lib/libc.so.6
Rss:                 900 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 r--p 00000000 08:01 11 /venv/tensorflow/libtensorflow_framework.so.2
Rss:                   0 kB
Anonymous:             0 kB
7f0000600000-7f0000700000 rw-p 00000000 00:00 0
Rss:                4096 kB
Anonymous:          4096 kB
"""


def test_only_clean_read_only_mappings_of_the_library_are_chosen(tmp_path: Path) -> None:
    smaps = tmp_path / "smaps"
    smaps.write_text(SMAPS)
    # not: copy-on-write pages (relocated data), writable, another library, nothing resident, anonymous
    assert _mappings(b"libtensorflow", str(smaps)) == [
        (0x7F0000000000, 0x7F0000100000, 512 * 1024),
        (0x7F0000100000, 0x7F0000200000, 1024 * 1024),
    ]


def _resident_kb(path: Path) -> int:
    text = Path("/proc/self/smaps").read_text()
    blocks = re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text)
    return sum(
        int(re.search(r"^Rss:\s+(\d+)", block, re.MULTILINE)[1])  # type: ignore[index]
        for block in blocks
        if block.split("\n", 1)[0].endswith(str(path))
    )


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_a_read_only_file_mapping_is_released_and_reads_the_same(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    clean, written = tmp_path / "libclean-pages.bin", tmp_path / "libwritten-pages.bin"
    clean.write_bytes(data)
    written.write_bytes(data)
    with clean.open("rb") as f, written.open("r+b") as g:
        ro = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cow = mmap.mmap(g.fileno(), 0, access=mmap.ACCESS_COPY)  # private and writable
        try:
            assert ro[:] == data and cow[:] == data  # both resident now
            cow[0:4] = b"mine"  # a private page the file does not have
            assert _resident_kb(clean) >= 1024
            assert release_file_pages("pages.bin") >= 1024 * 1024
            assert _resident_kb(clean) == 0
            assert ro[:] == data  # faulted back in from the file
            assert cow[0:4] == b"mine" and cow[4:] == data[4:]  # writable mappings are never touched
        finally:
            ro.close()
            cow.close()
