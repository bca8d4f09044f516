"""Files: content hashes, writes that a killed process never leaves half done, and a folder's files listed fast."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FolderFile:
    """A file under a folder, as `folder_files` lists it."""

    rel: str  # its path relative to the folder, "/"-separated: an image's id
    path: str  # its path under the folder's real path (for a link: the link's, not its target's)
    link: bool  # a symbolic link, whose target may lie outside the folder
    size: int  # of the file (a link's target)
    mtime_ns: int


def folder_files(folder: str | Path) -> list[FolderFile]:
    """Every file under `folder`, any depth, in the order of their relative paths' parts: links to files are
    followed, links to folders are not (as pathlib's rglob), broken links left out. One scandir per folder and no
    per-file path objects: a rescan of an inbox of 10^5 files lists them in a fraction of a second (pathlib's
    rglob, is_file and resolve per file took about 1.7 s for 10^4)."""
    found: list[FolderFile] = []

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, f"{prefix}{entry.name}/")
                elif entry.is_file():
                    stat = entry.stat()
                    rel = f"{prefix}{entry.name}"
                    found.append(FolderFile(rel, entry.path, entry.is_symlink(), stat.st_size, stat.st_mtime_ns))

    walk(os.path.realpath(folder), "")
    found.sort(key=lambda f: f.rel.split("/"))
    return found


_SECTION = re.compile(r"<!-- begin (?P<name>[\w./-]+) -->\n.*?<!-- end (?P=name) -->\n?", re.S)


def marked_sections(text: str) -> list[str]:
    """The blocks of a page that a benchmark wrote (`<!-- begin NAME -->` ... `<!-- end NAME -->`), in order, so
    that a tool regenerating the rest of the page (`gmv report --markdown`) keeps them."""
    return [m.group(0).rstrip("\n") + "\n" for m in _SECTION.finditer(text)]


def put_marked_section(path: Path, name: str, body: str) -> None:
    """Write `body` as the block NAME of the page at `path`: in place of the old block, else at the end."""
    if not re.fullmatch(r"[\w./-]+", name):  # a name the markers cannot be found by again would be appended each run
        raise ValueError(f"a marked section's name is letters, digits and . / - _ only, got {name!r}")
    block = f"<!-- begin {name} -->\n{body.rstrip()}\n<!-- end {name} -->\n"
    text = path.read_text() if path.is_file() else ""
    old = next((m for m in _SECTION.finditer(text) if m.group("name") == name), None)
    text = (
        text[: old.start()] + block + text[old.end() :] if old else text.rstrip("\n") + ("\n\n" if text else "") + block
    )
    write_atomically(path, lambda tmp: tmp.write_text(text))
