"""Attributes derived from pixels, for C2 where the data has no attribute labels (the demo).

Each attribute is an image statistic cut at its median over the training images; the same
statistics and cut points are then applied to generated images, so both sides are labelled alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from ..common.tensors import to_tensor_batch

INK_LEVEL = 0.2  # a pixel brighter than this (of 1) belongs to the object


STATISTICS = ("ink", "brightness", "aspect", "symmetry")


def image_statistics(images: Sequence[np.ndarray], size: int = 28, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Per image: `ink` (object area), `brightness` (mean object intensity), `aspect` (box width/height),
    `symmetry` (1 - mean |left - mirrored right|), all on grey images resized to `size`. `images` is read `chunk`
    at a time (a sources.images.ImageSequence loads only those), so memory holds one chunk, not the training set."""
    parts = [_statistics(images[s : s + chunk], size) for s in range(0, len(images), chunk)]
    return {name: np.concatenate([p[name] for p in parts]) if parts else np.empty(0) for name in STATISTICS}


def _statistics(images: Sequence[np.ndarray], size: int) -> dict[str, np.ndarray]:
    x = to_tensor_batch(list(images), size, 1)[:, 0].numpy().astype(np.float64)  # (n, s, s) in [0, 1]
    ink_mask = x > INK_LEVEL
    area = ink_mask.mean(axis=(1, 2))
    brightness = np.where(
        ink_mask.any(axis=(1, 2)), (x * ink_mask).sum(axis=(1, 2)) / np.maximum(ink_mask.sum(axis=(1, 2)), 1), 0.0
    )
    cols, rows = ink_mask.any(axis=1), ink_mask.any(axis=2)
    width = np.where(cols.any(1), size - np.argmax(cols[:, ::-1], 1) - np.argmax(cols, 1), 0)
    height = np.where(rows.any(1), size - np.argmax(rows[:, ::-1], 1) - np.argmax(rows, 1), 0)
    aspect = width / np.maximum(height, 1)
    symmetry = 1.0 - np.abs(x - x[:, :, ::-1]).mean(axis=(1, 2))
    return {"ink": area, "brightness": brightness, "aspect": aspect, "symmetry": symmetry}


def fit_cut_points(statistics: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.median(v)) for name, v in statistics.items()}


def attribute_json(statistics: dict[str, np.ndarray], cut_points: dict[str, float]) -> list[str]:
    """One JSON object per image, {"ink": "high", "aspect": "low", ...}, as manifests store attributes."""
    names = sorted(cut_points)
    n = len(next(iter(statistics.values()))) if statistics else 0
    levels = {name: np.where(statistics[name] > cut_points[name], "high", "low") for name in names}
    return [json.dumps({name: str(levels[name][i]) for name in names}, sort_keys=True) for i in range(n)]


def derived_attributes(
    train: Sequence[np.ndarray], generated: Sequence[np.ndarray]
) -> tuple[list[str], list[str], dict]:
    """Attributes of training and generated images, cut at the training medians (returned too)."""
    train_stats = image_statistics(train)
    cuts = fit_cut_points(train_stats)
    return attribute_json(train_stats, cuts), attribute_json(image_statistics(generated), cuts), cuts
