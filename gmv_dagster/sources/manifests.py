"""Manifests: one row per image of a source (a folder of images or a `.npz`), with what was left out.

Ids are stable: the path relative to the folder, or `<container stem>:<row>`.

Every image is decoded when its manifest is made, so that an unreadable one is found before any
work is spent on it; bytes that an earlier manifest already held (same content hash) were decoded then
and are not decoded again, so a rescan of an unchanged folder reads and hashes its files only. What
then happens is the policy `on_bad_image`: `fail` (the default) refuses the source, naming the first
bad file and what is wrong with it; `skip` leaves bad images out and reports each (path, reason) in
the scan's `skipped` table. Files that are not PNG or JPEG are never images here: they are reported
as skipped under either policy (attributes.csv and batch markers excepted).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..common.files import folder_files
from ..common.sampling import chunks
from .images import IMAGE_SUFFIXES, SourceError, array_hash, image_problem, load_npz

MANIFEST_SCHEMA = {
    "id": pl.String,
    "uri": pl.String,
    "content_hash": pl.String,
    "label": pl.String,
    "attributes": pl.String,  # JSON object, "{}" when none
}
BAD_IMAGE_POLICIES = ("fail", "skip")
ON_BAD_IMAGE = "fail"  # the default: a bad file stops the run, named, before anything is written
SKIPPED_SCHEMA = {"path": pl.String, "reason": pl.String}
# Files a folder source may hold besides images (see batches.COMPLETE_MARKER).
NOT_IMAGES = ("attributes.csv", "_COMPLETE")


@dataclass(frozen=True)
class Scan:
    """A source's manifest, and what was left out of it (path, reason)."""

    manifest: pl.DataFrame
    skipped: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKIPPED_SCHEMA))
    known: int = 0  # images not decoded again: their bytes were in an earlier manifest


def check_policy(on_bad_image: str) -> None:
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise ValueError(f"on_bad_image must be one of {BAD_IMAGE_POLICIES} (GMV_ON_BAD_IMAGE), got {on_bad_image!r}")


def _left_out(
    source: Path, bad: list[tuple[Path, str]], on_bad_image: str, total: int, others: list[tuple[Path, str]] = ()
) -> pl.DataFrame:
    """The skipped table (bad images, then `others`: files that are not images), or the error that the
    policy, or a source with no good image, calls for. `total`: the images there were, bad ones included."""
    if bad and on_bad_image == "fail":
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SourceError(
            f"{path}: {why}{more}. Remove or replace the file, or set on_bad_image: skip "
            "(GMV_ON_BAD_IMAGE=skip) to value the other images and list the bad ones"
        )
    if bad and len(bad) == total:
        raise SourceError(f"no readable image under {source}: all {total} are bad, e.g. {bad[0][0]}: {bad[0][1]}")
    rows = [*bad, *others]
    return pl.DataFrame({"path": [str(p) for p, _ in rows], "reason": [why for _, why in rows]}, schema=SKIPPED_SCHEMA)


def _read_attributes(folder: Path, ids: list[str], left_out: list[str] = ()) -> dict[str, str]:
    """attributes.csv: a header, then one row per image (file name or relative path first); rows of images
    that were left out (on_bad_image: skip) are ignored."""
    path = folder / "attributes.csv"
    if not path.is_file():
        return {}
    by_id: dict[str, str] = {}
    known, basenames = set(ids), {Path(i).name: i for i in ids}
    skipped = set(left_out) | {Path(i).name for i in left_out}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or len(reader.fieldnames) < 2:
            raise SourceError(f"{path}: needs a header with a file-name column and at least one attribute")
        key = reader.fieldnames[0]
        for line, row in enumerate(reader, start=2):
            name = (row.get(key) or "").strip()
            if None in row or any(v is None for v in row.values()):
                raise SourceError(
                    f"{path}, line {line}: wrong number of fields; each row needs {len(reader.fieldnames)}"
                )
            image_id = name if name in known else basenames.get(name)
            if image_id is None and name in skipped:
                continue
            if image_id is None:
                raise SourceError(f"{path}, line {line}: {name!r} is not an image in {folder}")
            if image_id in by_id:
                raise SourceError(f"{path}, line {line}: a second row for {name!r}; keep one row per image")
            by_id[image_id] = json.dumps({k: v for k, v in row.items() if k != key}, sort_keys=True)
    return by_id


def _verdict(path: str, known_good: Collection[str]) -> tuple[str, str | None, bool]:
    """(sha256 of the file, why it is not an image or None, whether the decode was skipped as known good)."""
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest in known_good:
        return digest, None, True
    return digest, image_problem(data), False


# File reads, hashing and PIL's decoders release the GIL; threads also overlap a network file system's latency.
SCAN_THREADS = min(8, 2 * (os.cpu_count() or 1))
SCAN_CHUNK = 1024


def _verdicts(paths: list[str], known_good: Collection[str]) -> list[tuple[str, str | None, bool]]:
    return [_verdict(path, known_good) for path in paths]


def folder_manifest(
    folder: Path,
    on_bad_image: str = ON_BAD_IMAGE,
    known_good: Collection[str] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
) -> Scan:
    """PNG/JPEG files under `folder`, any depth; the first subfolder is the class label.

    `known_good`: content hashes of images an earlier manifest held; those bytes are not decoded again.
    `progress(n, total)` is called as each chunk of `n` of the `total` image files is checked.
    """
    check_policy(on_bad_image)
    folder = Path(folder)
    everything = folder_files(folder)
    candidates = [f for f in everything if os.path.splitext(f.rel)[1].lower() in IMAGE_SUFFIXES]
    if not candidates:
        raise SourceError(f"no PNG or JPEG images under {folder}: point the source at a folder of images")
    # A link may not take the pipeline outside the folder it was pointed at (the data root). Every other file was
    # reached through no link, so its path under the real root is its real path.
    root = os.path.realpath(folder)
    uris = {}
    for f in candidates:
        if f.link:
            target = os.path.realpath(f.path)
            if not target.startswith(root + os.sep):
                raise SourceError(
                    f"{folder / f.rel} links to {target}, outside the data root {root}: copy the image into the "
                    "folder or point the source at a folder that holds it"
                )
            uris[f.rel] = target
    others = [
        (folder / f.rel, "not a PNG or JPEG file (only .png, .jpg, .jpeg are read)")
        for f in everything
        if os.path.splitext(f.rel)[1].lower() not in IMAGE_SUFFIXES and f.rel.rsplit("/", 1)[-1] not in NOT_IMAGES
    ]
    files, hashes, bad, known = [], [], [], 0
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        # a chunk at a time, so 10^6 files are not 10^6 pending futures; each thread takes a slice of it, so that a
        # future costs more than one small file's read and decode
        for chunk in chunks(candidates, SCAN_CHUNK):
            step = -(-len(chunk) // SCAN_THREADS)
            parts = [chunk[i : i + step] for i in range(0, len(chunk), step)]
            verdicts = pool.map(lambda part: _verdicts([f.path for f in part], known_good), parts)
            for f, (digest, problem, was_known) in zip(chunk, (v for part in verdicts for v in part)):
                if problem is None:
                    files.append(f)
                    hashes.append(digest)
                    known += was_known
                else:
                    bad.append((folder / f.rel, problem))
            if progress is not None:
                progress(len(chunk), len(candidates))
    skipped = _left_out(folder, bad, on_bad_image, len(candidates), others)
    ids = [f.rel for f in files]
    attributes = _read_attributes(folder, ids, [p.relative_to(folder).as_posix() for p, _ in bad])
    manifest = pl.DataFrame(
        {
            "id": ids,
            "uri": [uris.get(f.rel, f.path) for f in files],
            "content_hash": hashes,
            "label": [i.split("/")[0] if "/" in i else None for i in ids],
            "attributes": [attributes.get(i, "{}") for i in ids],
        },
        schema=MANIFEST_SCHEMA,
    )
    return Scan(manifest, skipped, known)


def npz_manifest(path: Path, on_bad_image: str = ON_BAD_IMAGE) -> Scan:
    """Rows of `images` with NaN or Inf pixels are bad images (float arrays)."""
    check_policy(on_bad_image)
    images, labels = load_npz(str(path.resolve()))
    manifest = arrays_manifest(images, labels, prefix=path.stem, uri_base=str(path.resolve()))
    if images.dtype.kind != "f":
        return Scan(manifest)
    finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    bad = [(Path(f"{path}#{i}"), "pixels are NaN or Inf") for i in np.flatnonzero(~finite)]
    skipped = _left_out(path, bad, on_bad_image, len(images))
    return Scan(manifest.filter(pl.Series(finite)), skipped)


def arrays_manifest(
    images: np.ndarray, labels: np.ndarray | None, prefix: str, uri_base: str | None = None
) -> pl.DataFrame:
    """Manifest for in-memory images (N, H, W[, C]); uris point into `uri_base` when given."""
    if len(images) == 0:
        raise SourceError(f"{uri_base or prefix}: holds no images")
    return pl.DataFrame(
        {
            "id": [f"{prefix}:{i:06d}" for i in range(len(images))],
            "uri": [f"{uri_base}#{i}" if uri_base else None for i in range(len(images))],
            "content_hash": [array_hash(img) for img in images],
            "label": [str(x) for x in labels] if labels is not None else [None] * len(images),
            "attributes": ["{}"] * len(images),
        },
        schema=MANIFEST_SCHEMA,
    )


def manifest_from_path(
    source: str,
    on_bad_image: str = ON_BAD_IMAGE,
    known_good: Collection[str] = frozenset(),
    progress: Callable[[int, int], None] | None = None,
) -> Scan:
    """The manifest of a folder of images or a `.npz` file, and the images left out of it (folders: see
    folder_manifest for `known_good` and `progress`)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return folder_manifest(path, on_bad_image, known_good, progress)
    if path.is_file() and path.suffix == ".npz":
        return npz_manifest(path, on_bad_image)
    raise SourceError(
        f"image source {source!r} is neither a folder of images nor a .npz file "
        "(with `images` of shape (N,H,W[,C]) and optional `labels`)"
    )
