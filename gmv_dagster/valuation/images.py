"""Image sources: manifests (one row per image) and the pixels behind their uris.

A uri is a file path, or `container#row` for an image stored in an array container
(`.npz` with `images`, or an IDX file as Fashion-MNIST ships). Ids are stable: the path
relative to the folder, or `<container stem>:<row>`.

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
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from .embedders import batches
from .sampling import seeded_rows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MANIFEST_SCHEMA = {
    "id": pl.String,
    "uri": pl.String,
    "content_hash": pl.String,
    "label": pl.String,
    "attributes": pl.String,  # JSON object, "{}" when none
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class SourceError(ValueError):
    """A source of images that cannot be read, with what to do about it."""


BAD_IMAGE_POLICIES = ("fail", "skip")
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


def image_problem(data: bytes) -> str | None:
    """Why these file bytes are not an image that can be valued, or None when they are one."""
    if not data:
        return "empty file (0 bytes)"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            pixels = to_uint8_image(img)
    except Exception as exc:  # PIL raises many types for bad files
        return f"not a readable image ({type(exc).__name__}: {exc})"
    if pixels.size == 0:
        return "image has no pixels"
    return None


def _left_out(source: Path, bad: list[tuple[Path, str]], on_bad_image: str, total: int,
              others: list[tuple[Path, str]] = ()) -> pl.DataFrame:
    """The skipped table (bad images, then `others`: files that are not images), or the error that the
    policy, or a source with no good image, calls for. `total`: the images there were, bad ones included."""
    if bad and on_bad_image == "fail":
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SourceError(f"{path}: {why}{more}. Remove or replace the file, or set on_bad_image: skip "
                          "(GMV_ON_BAD_IMAGE=skip) to value the other images and list the bad ones")
    if bad and len(bad) == total:
        raise SourceError(f"no readable image under {source}: all {total} are bad, e.g. {bad[0][0]}: {bad[0][1]}")
    rows = [*bad, *others]
    return pl.DataFrame({"path": [str(p) for p, _ in rows], "reason": [why for _, why in rows]}, schema=SKIPPED_SCHEMA)


def array_hash(image: np.ndarray) -> str:
    h = hashlib.sha256(f"{image.dtype}{image.shape}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def to_uint8_image(img: Image.Image) -> np.ndarray:
    """HxW (grey) or HxWx3 (colour) uint8, whatever the file's mode or bit depth."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.mode == "F":
        return np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.mode in ("L", "LA", "1"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image_file(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            return to_uint8_image(img)
    except Exception as exc:  # PIL raises many types for bad files
        raise SourceError(f"cannot read image {path}: {exc}. Remove or replace the file.") from exc


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def locate_fashion_mnist(explicit_dir: str | None, download_root: Path) -> Path:
    """The folder holding the Fashion-MNIST IDX files, trying the three documented ways in turn."""
    tried = []
    candidates = []
    if explicit_dir:
        candidates.append(("GMV_FASHION_MNIST_DIR", Path(explicit_dir)))
    candidates.append(("Debian's dataset-fashion-mnist", DEBIAN_FASHION_MNIST))
    for how, directory in candidates:
        if all(_find_idx(directory, s) for pair in FASHION_MNIST_FILES.values() for s in pair):
            return directory
        tried.append(f"{how}: no Fashion-MNIST IDX files in {directory}")
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(download_root), train=True, download=True)
        FashionMNIST(str(download_root), train=False, download=True)
        return download_root / "FashionMNIST" / "raw"
    except Exception as exc:  # no internet is the usual cause
        tried.append(f"torchvision download into {download_root}: {exc}")
    raise SourceError(
        "Fashion-MNIST (the demo data) was not found. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nFix one of: set GMV_FASHION_MNIST_DIR to a folder with the four IDX files; "
        "`apt-get install dataset-fashion-mnist`; or run where the internet is reachable."
    )


def fashion_mnist_manifest(directory: Path, split: str, n: int | None, seed: int) -> pl.DataFrame:
    """A seeded subset of n images of one split (all of them when n is None), in index order."""
    image_stem, label_stem = FASHION_MNIST_FILES[split]
    image_path, label_path = _find_idx(directory, image_stem), _find_idx(directory, label_stem)
    images, labels = read_idx(image_path), read_idx(label_path)
    rows = seeded_rows(len(images), n, seed)
    return pl.DataFrame(
        {
            "id": [f"fashion-mnist-{split}:{i:05d}" for i in rows],
            "uri": [f"{image_path}#{i}" for i in rows],
            "content_hash": [array_hash(images[i]) for i in rows],
            "label": [FASHION_MNIST_CLASSES[labels[i]] for i in rows],
            "attributes": ["{}"] * len(rows),
        },
        schema=MANIFEST_SCHEMA,
    )


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
                raise SourceError(f"{path}, line {line}: wrong number of fields; each row needs {len(reader.fieldnames)}")
            image_id = name if name in known else basenames.get(name)
            if image_id is None and name in skipped:
                continue
            if image_id is None:
                raise SourceError(f"{path}, line {line}: {name!r} is not an image in {folder}")
            if image_id in by_id:
                raise SourceError(f"{path}, line {line}: a second row for {name!r}; keep one row per image")
            by_id[image_id] = json.dumps({k: v for k, v in row.items() if k != key}, sort_keys=True)
    return by_id


def _verdict(path: Path, known_good: Collection[str]) -> tuple[str, str | None, bool]:
    """(sha256 of the file, why it is not an image or None, whether the decode was skipped as known good)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest in known_good:
        return digest, None, True
    return digest, image_problem(data), False


# File reads, hashing and PIL's decoders release the GIL; threads also overlap a network file system's latency.
SCAN_THREADS = min(8, 2 * (os.cpu_count() or 1))
SCAN_CHUNK = 1024


def folder_manifest(folder: Path, on_bad_image: str = "fail", known_good: Collection[str] = frozenset(),
                    progress: Callable[[int, int], None] | None = None) -> Scan:
    """PNG/JPEG files under `folder`, any depth; the first subfolder is the class label.

    `known_good`: content hashes of images an earlier manifest held; those bytes are not decoded again.
    `progress(n, total)` is called as each chunk of `n` of the `total` image files is checked.
    """
    check_policy(on_bad_image)
    everything = sorted(p for p in folder.rglob("*") if p.is_file())
    candidates = [p for p in everything if p.suffix.lower() in IMAGE_SUFFIXES]
    if not candidates:
        raise SourceError(f"no PNG or JPEG images under {folder}: point the source at a folder of images")
    # A link may not take the pipeline outside the folder it was pointed at (the data root).
    root = folder.resolve()
    for p in candidates:
        if not p.resolve().is_relative_to(root):
            raise SourceError(f"{p} links to {p.resolve()}, outside the data root {root}: copy the image into the "
                              "folder or point the source at a folder that holds it")
    others = [(p, "not a PNG or JPEG file (only .png, .jpg, .jpeg are read)") for p in everything
              if p.suffix.lower() not in IMAGE_SUFFIXES and p.name not in NOT_IMAGES]
    files, hashes, bad, known = [], [], [], 0
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        # map keeps the files' order; a chunk at a time, so 10^6 files are not 10^6 pending futures
        for chunk in batches(candidates, SCAN_CHUNK):
            for p, (digest, problem, was_known) in zip(chunk, pool.map(lambda p: _verdict(p, known_good), chunk)):
                if problem is None:
                    files.append(p)
                    hashes.append(digest)
                    known += was_known
                else:
                    bad.append((p, problem))
            if progress is not None:
                progress(len(chunk), len(candidates))
    skipped = _left_out(folder, bad, on_bad_image, len(candidates), others)
    ids = [p.relative_to(folder).as_posix() for p in files]
    attributes = _read_attributes(folder, ids, [p.relative_to(folder).as_posix() for p, _ in bad])
    manifest = pl.DataFrame(
        {
            "id": ids,
            "uri": [str(p.resolve()) for p in files],
            "content_hash": hashes,
            "label": [i.split("/")[0] if "/" in i else None for i in ids],
            "attributes": [attributes.get(i, "{}") for i in ids],
        },
        schema=MANIFEST_SCHEMA,
    )
    return Scan(manifest, skipped, known)


def npz_manifest(path: Path, on_bad_image: str = "fail") -> Scan:
    """Rows of `images` with NaN or Inf pixels are bad images (float arrays)."""
    check_policy(on_bad_image)
    images, labels = _load_npz(str(path.resolve()))
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


def manifest_from_path(source: str, on_bad_image: str = "fail", known_good: Collection[str] = frozenset(),
                       progress: Callable[[int, int], None] | None = None) -> Scan:
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


@lru_cache(maxsize=8)
def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data:
                raise SourceError(f"{path}: no array named `images` (found {sorted(data.files)})")
            images = data["images"]
            labels = data["labels"] if "labels" in data else None
    except (OSError, ValueError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"cannot read {path}: {exc}") from exc
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
        raise SourceError(f"{path}: `images` must be (N,H,W) or (N,H,W,C) with C in 1/3/4, got {images.shape}")
    if labels is not None and len(labels) != len(images):
        raise SourceError(f"{path}: {len(labels)} labels for {len(images)} images")
    return images, labels


@lru_cache(maxsize=4)
def _load_container(path: str) -> np.ndarray:
    if path.endswith(".npz"):
        return _load_npz(path)[0]
    return read_idx(Path(path))


def normalise_array_image(image: np.ndarray) -> np.ndarray:
    """Array images to the same uint8 HxW / HxWx3 form as files."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype != np.uint8:
        scale = 255.0 if img.dtype.kind == "f" and img.max() <= 1.0 else 1.0
        img = np.clip(img.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    return img


def load_image(uri: str) -> np.ndarray:
    container, sep, row = uri.rpartition("#")
    if sep and (container.endswith(".npz") or "idx" in Path(container).name):
        return normalise_array_image(_load_container(container)[int(row)])
    return read_image_file(Path(uri))


def load_images(uris: list[str]) -> list[np.ndarray]:
    return [load_image(u) for u in uris]
