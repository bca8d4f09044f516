"""Shared fixtures: small image sets that the tests make, with a known answer."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def make_training_set(n_per_class: int = 12, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of distinct shapes (bar, ring, cross) at random positions and widths."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label in ("bar", "ring", "cross"):
        for _ in range(n_per_class):
            cx, cy = rng.integers(7, size - 7, 2)
            w = rng.uniform(1.5, 3.5)
            if label == "bar":
                mask = np.abs(xx - cx) < w
            elif label == "ring":
                mask = np.abs(np.hypot(xx - cx, yy - cy) - 2 * w) < 1.2
            else:
                mask = (np.abs(xx - cx) < w / 2) | (np.abs(yy - cy) < w / 2)
            img = mask * rng.uniform(150, 255) + rng.normal(0, 8, (size, size))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def perturbed_copies(train: np.ndarray, sources: np.ndarray, seed: int = 1) -> np.ndarray:
    """Generated images that are near-copies (mild noise) of chosen training images."""
    rng = np.random.default_rng(seed)
    out = train[sources].astype(np.float64) + rng.normal(0, 6, train[sources].shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> Path:
    for i, (img, label) in enumerate(zip(images, labels)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / label / f"{prefix}{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def known_answer():
    """(train, train_labels, generated, generated_labels, sources): generated j copies train[sources[j]]."""
    train, labels = make_training_set()
    sources = np.array([0, 5, 13, 20, 27, 33])
    return train, labels, perturbed_copies(train, sources), labels[sources], sources


@pytest.fixture
def image_folders(tmp_path, known_answer):
    train, labels, gen, gen_labels, _ = known_answer
    return (
        write_folder(tmp_path / "train", train, labels, "t"),
        write_folder(tmp_path / "generated", gen, gen_labels, "g"),
    )


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (.ci/run does this)")
    return FASHION_MNIST
