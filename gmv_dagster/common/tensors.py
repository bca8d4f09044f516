"""Images to torch tensors, and weights files read as tensors only."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class WeightsNotFoundError(FileNotFoundError):
    """A model's weights are not on disk; the message says which file to provide."""


def load_weights(path: Path | str) -> dict:
    """A weights file's tensors, never code: torch.load(weights_only=True), which refuses pickled objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} holds pickled objects besides tensors and was not loaded (weights load with "
            "weights_only=True, as they may come from anywhere): save the model's state_dict() instead"
        ) from exc


def to_tensor_batch(images: list[np.ndarray], size: int, channels: int, resample: int = Image.BILINEAR) -> torch.Tensor:
    """(B, channels, size, size) float32 in [0, 1]; any input size, grey or colour."""
    if not len(images):
        return torch.empty((0, channels, size, size))
    mode, shape = ("L", (size, size)) if channels == 1 else ("RGB", (size, size, 3))

    def pixels(image) -> np.ndarray:
        a = np.asarray(image)
        if a.dtype == np.uint8 and a.shape == shape:  # already what PIL's convert and resize would return
            return a
        return np.asarray(Image.fromarray(a).convert(mode).resize((size, size), resample))

    batch = torch.from_numpy(np.stack([pixels(image) for image in images])).to(torch.float32) / 255.0
    return batch[:, None] if channels == 1 else batch.permute(0, 3, 1, 2).contiguous()


def has_colour(image: np.ndarray) -> bool:
    """Whether an image's channels differ somewhere (an RGB file of a grey image has none)."""
    a = np.asarray(image)
    return (
        a.ndim == 3
        and a.shape[2] >= 3
        and not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))
    )
