"""Fashion-MNIST, the demo's data: where its IDX files are, and a seeded manifest of one split."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..common.sampling import seeded_rows
from .images import SourceError, array_hash, read_idx
from .manifests import MANIFEST_SCHEMA

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


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
