"""Manifest scan: the cost of checking a folder of images, first and on a rescan.

    .venv/bin/python bench/scan.py [--images 5000] [--size 256] [--format jpg]

Writes `--images` photo-like pictures (smooth colour fields, edges and grain; `--size` px square) into a
work folder, then times `folder_manifest` as the training_images asset runs it: a first scan (every file
read, hashed and decoded) with one thread and with the default scan threads, and a rescan of the
unchanged folder given the stored manifest's content hashes (read and hashed only), and after 1% of the
files changed. Prints files per second and milliseconds per image.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gmv_dagster.sources import manifests


def write_images(folder: Path, n: int, size: int, fmt: str, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    total = 0
    for i in range(n):
        a, b, c = rng.uniform(0, 6, 3)
        field = np.stack([np.sin(a * xx + b * yy + k) for k in (0, 2, 4)], -1) * 90 + 128
        field[(xx - rng.uniform()) ** 2 + (yy - rng.uniform()) ** 2 < rng.uniform(0.01, 0.1)] *= 0.4
        pixels = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
        path = folder / f"class{i % 10}" / f"{i:06d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, **({"quality": 90} if fmt == "jpg" else {}))
        total += path.stat().st_size
    return total


def timed_scan(folder: Path, **kwargs) -> tuple[float, manifests.Scan]:
    start = time.perf_counter()
    scan = manifests.folder_manifest(folder, **kwargs)
    return time.perf_counter() - start, scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg")
    parser.add_argument("--work", default="/tmp/gmv_bench_scan")
    args = parser.parse_args()

    folder = Path(args.work)
    shutil.rmtree(folder, ignore_errors=True)
    size_bytes = write_images(folder, args.images, args.size, args.format)
    print(
        f"# scan: {args.images:,} {args.format.upper()} images of {args.size} px "
        f"({size_bytes / args.images / 1024:.0f} KB each); "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{manifests.SCAN_THREADS} scan threads\n"
    )
    default_threads = manifests.SCAN_THREADS
    rows = []
    manifests.SCAN_THREADS = 1
    seconds, _ = timed_scan(folder)
    rows.append(("first scan, 1 thread (every file decoded)", seconds))
    manifests.SCAN_THREADS = default_threads
    seconds, first = timed_scan(folder)
    rows.append((f"first scan, {default_threads} threads", seconds))
    known = frozenset(first.manifest["content_hash"])
    seconds, again = timed_scan(folder, known_good=known)
    assert again.known == args.images and again.manifest.equals(first.manifest)
    rows.append(("rescan, unchanged (read + hash only)", seconds))
    changed = sorted(folder.rglob(f"*.{args.format}"))[::100]
    for path in changed:
        with Image.open(path) as img:
            inverted = 255 - np.asarray(img)
        Image.fromarray(inverted).save(path)
    seconds, again = timed_scan(folder, known_good=known)
    assert again.known == args.images - len(changed)
    rows.append((f"rescan, {len(changed)} files changed", seconds))

    print("| scan | seconds | files / s | ms / image |")
    print("|---|---|---|---|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.2f} | {args.images / seconds:,.0f} | {1000 * seconds / args.images:.3f} |")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
