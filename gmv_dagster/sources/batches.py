"""Batches of generated images: the configured source and the folders that arrive in the inbox.

A batch is a folder `<inbox>/<name>/` of images, complete once the producer writes the marker file
`<inbox>/<name>/_COMPLETE` after its last image; folders without the marker are still being written
and are left alone. The name is the batch's key (its Dagster partition), and every generated id is
`<batch>/<id within the batch>`, so two batches may reuse file names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from .images import SourceError
from .manifests import ON_BAD_IMAGE, Scan, manifest_from_path

COMPLETE_MARKER = "_COMPLETE"
DEMO = "demo"  # a source so named is the built-in demo: Fashion-MNIST and the demo generator's images
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def is_batch_key(name: str) -> bool:
    """Letters, digits, `_`, `.`, `-`; starts with a letter or digit; at most 100 characters."""
    return bool(_KEY.match(name))


def source_batch_key(source: str) -> str:
    """The key of the configured generated source's batch: its folder or file name, cleaned to a valid key."""
    stem = Path(source.rstrip("/")).stem
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("_.-")[:100]
    return key or "generated"


def configured_batch_key(generated: str) -> str:
    """The batch key of the configured generated source (GMV_GENERATED_SOURCE): `demo`, or its name as a key."""
    return DEMO if generated == DEMO else source_batch_key(generated)


def inbox_folder(home: Path, env: Mapping[str, str]) -> Path:
    """Where new batches arrive: GMV_INBOX, else GMV_HOME/inbox."""
    return Path(env.get("GMV_INBOX") or home / "inbox").expanduser().resolve()


def batch_order(source_key: str, inbox: Path) -> list[str]:
    """The batches to value: the configured source's, then each complete inbox folder (name order)."""
    ready, _ = scan_inbox(inbox)
    return [source_key] + [key for key in ready if key != source_key]


def scan_inbox(inbox: Path) -> tuple[list[str], dict[str, str]]:
    """(complete batch keys in name order, {folder: why it was not taken}) for the inbox folder."""
    if not inbox.is_dir():
        return [], {}
    ready, waiting = [], {}
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / COMPLETE_MARKER).is_file():
            waiting[folder.name] = f"no {COMPLETE_MARKER} marker yet (still being written?)"
        elif not is_batch_key(folder.name):
            waiting[folder.name] = "not a valid batch name: use letters, digits, _ . - (rename the folder)"
        else:
            ready.append(folder.name)
    return ready, waiting


def write_inbox_batch(inbox: Path, key: str, images: Sequence[np.ndarray]) -> Path:
    """A batch as a producer should write it: the images (PNG) into inbox/key, then the _COMPLETE marker last,
    so that the inbox sensor never takes a half-written batch."""
    folder = Path(inbox) / key
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img{i:05d}.png")
    (folder / COMPLETE_MARKER).touch()
    return folder


def inbox_batch_path(inbox: Path, key: str) -> Path:
    """The folder of a complete inbox batch; refuses unknown or incomplete ones."""
    folder = inbox / key
    if not is_batch_key(key) or not folder.is_dir():
        raise SourceError(f"batch {key!r}: no folder {folder}; a batch is a folder of images in the inbox {inbox}")
    if not (folder / COMPLETE_MARKER).is_file():
        raise SourceError(f"batch {key!r}: {folder} has no {COMPLETE_MARKER} marker; write it after the last image")
    return folder


def batch_manifest(
    key: str,
    source: str | Path,
    on_bad_image: str = ON_BAD_IMAGE,
    known_good: Collection[str] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
) -> Scan:
    """The manifest of one batch: ids prefixed by the batch key, and a `batch` column (and what was left out)."""
    scan = manifest_from_path(str(source), on_bad_image, known_good, progress)
    return replace(scan, manifest=scan.manifest.with_columns(id=pl.lit(f"{key}/") + pl.col("id"), batch=pl.lit(key)))
