"""A re-rank distance that survives small shifts and brightness / contrast changes, offline.

Both images are resized to `size` px (PIL bilinear, as the project's to_tensor_batch); the
generated image's centre (size - 2 max_shift px square) is compared with every window of the
same size in the candidate, i.e. at every translation of up to +-max_shift px; each window is
normalised to zero mean and unit standard deviation (all channels together, so relative colour
counts but brightness and contrast do not). The distance is the smallest mean squared difference
over the translations, which equals 2 (1 - the best Pearson correlation): 0 for an exact
(shifted, re-lit) copy, about 2 for unrelated images, up to 4.

Signature compatible with the project's re-rank: `PairDistance = Callable[[np.ndarray,
list[np.ndarray]], np.ndarray]` (one generated image, its candidates -> float64 distances).
`fused_distance` adds the embedding's cosine distance (weight 1 by default) to the aligned
distance: the aligned distance alone has no notion of rotation or scale, the learned embedding
no exact pixel check; their sum beat either on both benchmark domains (bench/attribution.py).

Imports nothing from the project.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from ..common.tensors import has_colour

__all__ = ["PairDistance", "aligned_distance", "fused_distance"]

PairDistance = Callable[[np.ndarray, list[np.ndarray]], np.ndarray]


def _resized(images: Sequence[np.ndarray], size: int, channels: int) -> np.ndarray:
    """(N, size, size, channels) float32 in [0, 1]."""
    mode = "L" if channels == 1 else "RGB"
    arrays = [
        np.asarray(
            Image.fromarray(np.asarray(img)).convert(mode).resize((size, size), Image.BILINEAR), dtype=np.float32
        )
        for img in images
    ]
    out = np.stack(arrays) / np.float32(255.0)
    return out[..., None] if channels == 1 else out


def _standardise(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    x = x - x.mean(axis=axes, keepdims=True)
    return x / (np.sqrt((x * x).mean(axis=axes, keepdims=True)) + 1e-3)


def aligned_distance(size: int = 32, max_shift: int = 3, channels: int | None = None) -> PairDistance:
    """The re-rank distance: min over translations of the normalised mean squared difference.

    `channels`: 1 (grey), 3 (colour) or None (colour when the generated image or any candidate
    has 3 channels that differ).
    """
    if max_shift < 0 or size - 2 * max_shift < 4:
        raise ValueError(
            f"aligned_distance: need 0 <= max_shift and size - 2 max_shift >= 4 "
            f"(got size={size}, max_shift={max_shift})"
        )
    m = size - 2 * max_shift

    def distance(generated: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
        if len(candidates) == 0:
            return np.empty(0, dtype=np.float64)
        ch = channels or (3 if has_colour(generated) or any(has_colour(c) for c in candidates) else 1)
        g = _resized([generated], size, ch)[0, max_shift : max_shift + m, max_shift : max_shift + m]
        g = _standardise(g, (0, 1, 2))
        c = _resized(candidates, size, ch)  # (N, S, S, C)
        # windows: (N, K, K, C, m, m) with K = 2 max_shift + 1
        w = sliding_window_view(c, (m, m), axis=(1, 2))
        w = _standardise(w, (3, 4, 5))
        corr = np.einsum("nabcij,ijc->nab", w, g, optimize=True) / np.float32(m * m * ch)
        best = corr.reshape(len(candidates), -1).max(axis=1)
        # mean squared difference of two standardised windows = 2 (1 - r) (exact up to the 1e-3 guard)
        return np.clip(2.0 * (1.0 - best.astype(np.float64)), 0.0, 4.0)

    return distance


def fused_distance(
    embed: Callable[[list[np.ndarray]], np.ndarray],
    weight: float = 1.0,
    size: int = 32,
    max_shift: int = 3,
    channels: int | None = None,
) -> PairDistance:
    """aligned distance + weight x (1 - cosine) of `embed` (any images -> L2-normalised rows, e.g.
    an `Embedder.embed`); the candidates are embedded again (cheap for a small model)."""
    aligned = aligned_distance(size, max_shift, channels)

    def distance(generated: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
        if len(candidates) == 0:
            return np.empty(0, dtype=np.float64)
        e = np.asarray(embed([generated, *candidates]), dtype=np.float64)
        cos = np.clip(1.0 - e[1:] @ e[0], 0.0, 2.0)
        return aligned(generated, candidates) + weight * cos

    return distance
