"""The pixels behind a manifest's uris, and the checks that tell an image from a bad file.

A uri is a file path, or `container#row` for an image stored in an array container (`.npz` with
`images`, or an IDX file as Fashion-MNIST ships). Every image comes out as uint8 HxW (grey) or HxWx3
(colour), whatever the file's mode or bit depth.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class SourceError(ValueError):
    """A source of images that cannot be read, with what to do about it."""


def image_problem(data: bytes) -> str | None:
    """Why these file bytes are not an image that can be valued, or None when they are one."""
    if not data:
        return "empty file (0 bytes)"
    try:
        pixels = decode_image(data)
    except Exception as exc:  # PIL raises many types for bad files
        return f"not a readable image ({type(exc).__name__}: {exc})"
    if pixels.size == 0:
        return "image has no pixels"
    return None


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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 8-bit PNG colour types read by decode_plain_png: PIL's mode for them, and the channels to_uint8_image keeps of it
_PLAIN_PNG = {0: ("L", None), 2: ("RGB", None), 4: ("LA", 0), 6: ("RGBA", slice(0, 3))}
# The only chunks decode_plain_png reads: any other (text, gamma, transparency, ...) sends the file to Image.open,
# whose checks of them (lengths, text limits) stay its own.
_PLAIN_CHUNKS = (b"IHDR", b"IDAT", b"IEND")


def decode_plain_png(data: bytes) -> np.ndarray | None:
    """`to_uint8_image`'s pixels of a plain PNG (8-bit grey or RGB, with or without alpha, not interlaced, chunks
    IHDR, IDAT..., IEND only, each with its CRC) from its bytes; None for any other file. PIL's own PNG decoder
    ("zip") does the work, given the image data directly: Image.open's parsing of a small file costs more than the
    decoding (28-px PNGs: 0.035 against 0.056 ms, and a generated image is read twice, to embed it and to score its
    quality). Where this returns None, Image.open reads the file or names its problem."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    plain = _PLAIN_PNG.get(colour)
    if (
        plain is None
        or depth != 8
        or compression
        or filtering
        or interlace
        or not 0 < width < 2**31
        or not 0 < height < 2**31
        or width * height > (Image.MAX_IMAGE_PIXELS or 2**62)
    ):
        return None  # and Image.open's decompression-bomb check stays Image.open's
    pos, pixels, kinds = 8, [], []
    while True:
        if pos + 12 > len(data):
            return None  # no IEND: truncated
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if (
            kind not in _PLAIN_CHUNKS
            or end + 4 > len(data)
            or zlib.crc32(data[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]
        ):
            return None
        kinds.append(kind)
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            pixels.append(data[pos + 8 : end])
        pos = end + 4
    if kinds != [b"IHDR", *[b"IDAT"] * len(pixels), b"IEND"] or not pixels:
        return None  # one IHDR first, consecutive IDATs, as Image.open requires
    mode, keep = plain
    try:
        image = np.asarray(Image.frombytes(mode, (width, height), b"".join(pixels), "zip", mode))
    except (ValueError, OSError):  # too little image data, or a broken zlib stream
        return None
    return image if keep is None else np.ascontiguousarray(image[..., keep])


def decode_image(data: bytes) -> np.ndarray:
    """A file's bytes as `to_uint8_image`'s pixels: a plain PNG by decode_plain_png, anything else by Image.open, whose
    exceptions say what is wrong with the file."""
    pixels = decode_plain_png(data)
    if pixels is not None:
        return pixels
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return to_uint8_image(img)


def read_image_file(path: Path) -> np.ndarray:
    try:
        return decode_image(Path(path).read_bytes())
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


def _npz_member(path: str, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """Array `name` of an .npz: memory-mapped where it is stored uncompressed (np.savez), so that a source of 10^6
    images costs the pages its readers touch, not its size; read whole where compressed (np.savez_compressed)."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the local file header; its name and extra field lengths are at bytes 26..29
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"array {name!r} holds Python objects; store numbers")
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran_order else "C")


def _identity(path: str) -> tuple[str, int, int, int]:
    """A file's path with its inode, size and modification time: a cache keyed on it never serves a rewritten file
    (a memory map of one rewritten in place would read torn data or fault)."""
    st = os.stat(path)
    return path, st.st_ino, st.st_size, st.st_mtime_ns


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """`images` and `labels` (or None) of an .npz, memory-mapped where stored uncompressed."""
    try:
        return _load_npz(*_identity(path))
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc}") from exc


@lru_cache(maxsize=8)
def _load_npz(path: str, *_file_version: int) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with zipfile.ZipFile(path) as archive:
            files = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
            if "images" not in files:
                raise SourceError(f"{path}: no array named `images` (found {sorted(files)})")
            images = _npz_member(path, archive, "images")
            labels = _npz_member(path, archive, "labels") if "labels" in files else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"cannot read {path}: {exc}") from exc
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
        raise SourceError(f"{path}: `images` must be (N,H,W) or (N,H,W,C) with C in 1/3/4, got {images.shape}")
    if labels is not None and len(labels) != len(images):
        raise SourceError(f"{path}: {len(labels)} labels for {len(images)} images")
    return images, labels


def _load_container(path: str) -> np.ndarray:
    if path.endswith(".npz"):
        return load_npz(path)[0]
    return _read_idx_cached(*_identity(path))


@lru_cache(maxsize=4)
def _read_idx_cached(path: str, *_file_version: int) -> np.ndarray:
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
        # a copy: the container may be a memory-mapped file, and the image should outlive and not alias it
        return normalise_array_image(np.array(_load_container(container)[int(row)]))
    return read_image_file(Path(uri))


def load_images(uris: list[str]) -> list[np.ndarray]:
    return [load_image(u) for u in uris]


class ImageSequence(Sequence):
    """The images at `uris`, each loaded when asked for: a consumer that reads a batch at a time holds one batch,
    not the whole table (quality scoring, calibration)."""

    def __init__(self, uris: Sequence[str]):
        self.uris = list(uris)

    def __len__(self) -> int:
        return len(self.uris)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return load_images(self.uris[index])
        return load_image(self.uris[index])
