"""Files: content hashes, and writes that a killed process never leaves half done."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path


def sha256_file(*paths: Path | str) -> str:
    """SHA-256 (hex) of the files' bytes, end to end, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` to a temporary name beside `path`, then rename it to `path` (atomic on one file system).

    A run killed mid-write leaves the previous file (or none), never a truncated one. The temporary name keeps
    `path`'s suffix, since some writers (numpy, scipy) choose the format by it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per host, process and call: two writers of one path on a shared volume never share a temporary file
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_SECTION = re.compile(r"<!-- begin (?P<name>[\w./-]+) -->\n.*?<!-- end (?P=name) -->\n?", re.S)


def marked_sections(text: str) -> list[str]:
    """The blocks of a page that a benchmark wrote (`<!-- begin NAME -->` ... `<!-- end NAME -->`), in order, so
    that a tool regenerating the rest of the page (`gmv report --markdown`) keeps them."""
    return [m.group(0).rstrip("\n") + "\n" for m in _SECTION.finditer(text)]


def put_marked_section(path: Path, name: str, body: str) -> None:
    """Write `body` as the block NAME of the page at `path`: in place of the old block, else at the end."""
    block = f"<!-- begin {name} -->\n{body.rstrip()}\n<!-- end {name} -->\n"
    text = path.read_text() if path.is_file() else ""
    old = next((m for m in _SECTION.finditer(text) if m.group("name") == name), None)
    text = (
        text[: old.start()] + block + text[old.end() :] if old else text.rstrip("\n") + ("\n\n" if text else "") + block
    )
    write_atomically(path, lambda tmp: tmp.write_text(text))
