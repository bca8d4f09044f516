"""Planted images with a known answer: OOD training images for C3 and near-copies for reasonableness.

OOD kinds: noise, heavy corruption, and another dataset. The polluted images get a seeded random
class label, since the demo generator is conditional and would otherwise refuse them; which rows
are polluted is returned so that C3 can score it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.tensors import to_tensor_batch

POLLUTION_KINDS = ("noise", "corrupted", "digits")


@dataclass(frozen=True)
class Pollution:
    images: list[np.ndarray]
    labels: list[str]
    kinds: list[str]  # one of POLLUTION_KINDS per image
    sources: list[int]  # for "corrupted": the training row it was made from; -1 otherwise


def digits_images(size: int = 28) -> np.ndarray:
    """scikit-learn's 8x8 handwritten digits (shipped with the package), upscaled to uint8 size x size."""
    from sklearn.datasets import load_digits

    raw = load_digits().images / 16.0  # (1797, 8, 8) in [0, 1]
    grey = [np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8) for img in raw]
    return (to_tensor_batch(grey, size, 1)[:, 0].numpy() * 255.0 + 0.5).astype(np.uint8)


def corrupt(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heavy corruption: random 7x7 block shuffle plus strong noise; the source is unrecognisable."""
    img = image.astype(np.float64)
    h, w = img.shape[:2]
    b = 7 if h % 7 == 0 and w % 7 == 0 else 1
    blocks = img.reshape(h // b, b, w // b, b).swapaxes(1, 2).reshape(-1, b, b)
    blocks = blocks[rng.permutation(len(blocks))]
    img = blocks.reshape(h // b, w // b, b, b).swapaxes(1, 2).reshape(h, w)
    img = img + rng.normal(0, 80.0, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def make_pollution(
    train: list[np.ndarray], classes: list[str], n: int, seed: int, kinds: tuple[str, ...] = POLLUTION_KINDS
) -> Pollution:
    """n OOD images (grey, the size of the first training image), kinds in turn."""
    unknown = set(kinds) - set(POLLUTION_KINDS)
    if unknown:
        raise ValueError(f"unknown pollution kind(s) {sorted(unknown)}; choose from {POLLUTION_KINDS}")
    if not kinds:
        raise ValueError("pollution needs at least one kind")
    rng = np.random.default_rng(seed)
    h, w = np.asarray(train[0]).shape[:2]
    digits = digits_images(h) if "digits" in kinds else None
    images, kind_list, sources = [], [], []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        source = -1
        if kind == "noise":
            img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == "corrupted":
            source = int(rng.integers(len(train)))
            grey = np.asarray(train[source])
            img = corrupt(grey if grey.ndim == 2 else grey.mean(axis=2).astype(np.uint8), rng)
        else:
            img = digits[int(rng.integers(len(digits)))]
        images.append(img)
        kind_list.append(kind)
        sources.append(source)
    labels = [classes[int(c)] for c in rng.integers(len(classes), size=n)]
    return Pollution(images, labels, kind_list, sources)


def pollution_count(n_clean: int, share: float) -> int:
    """Images to add so that they make up `share` of the polluted set."""
    if not 0 < share < 1:
        raise ValueError(f"pollution share must be in (0, 1), got {share}")
    return max(1, round(n_clean * share / (1 - share)))


def near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A generated-looking copy of a grey training image: shifted one pixel, contrast 0.9, noise sd 8."""
    img = np.asarray(image, dtype=np.float64)
    img = img if img.ndim == 2 else img.mean(axis=2)
    return np.clip(np.roll(img, 1, axis=1) * 0.9 + rng.normal(0, 8, img.shape) + 10, 0, 255).astype(np.uint8)
