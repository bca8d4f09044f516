"""Re-ranking of recalled candidates with a finer distance (docs/DESIGN.md, method step 2).

`none` keeps the embedding distance; `l2` is the mean squared pixel difference (grey,
`size` px, values in [0, 1]); `lpips` is LPIPS (AlexNet trunk from a local file, the
linear heads the `lpips` package ships). Distances of different re-rankers live on
different scales: the temperature is tuned for the default (see README).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..common.tensors import WeightsNotFoundError, load_weights, to_tensor_batch
from .aligned import aligned_distance
from .search import sort_neighbours

RERANKERS = ("none", "l2", "aligned", "lpips")
PairDistance = Callable[[np.ndarray, list[np.ndarray]], np.ndarray]


def l2_distance(size: int = 32) -> PairDistance:
    def distance(generated: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
        g = to_tensor_batch([generated], size, 1)
        c = to_tensor_batch(candidates, size, 1)
        return ((c - g) ** 2).mean(dim=(1, 2, 3)).double().numpy()

    return distance


def lpips_distance(backbone_path: str | None, size: int = 64, device: str | torch.device = "cpu") -> PairDistance:
    """LPIPS-Alex; `backbone_path` is a torchvision AlexNet state dict (alexnet-owt-7be5be79.pth)."""
    if not backbone_path or not Path(backbone_path).is_file():
        raise WeightsNotFoundError(
            f"rerank=lpips needs the AlexNet backbone as a local file (rerank_weights_path={backbone_path!r} "
            "does not exist): provide torchvision's alexnet-owt-7be5be79.pth. Nothing is downloaded at run time."
        )
    import lpips
    import torchvision

    alex = torchvision.models.alexnet(weights=None)
    alex.load_state_dict(load_weights(backbone_path))
    model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for slice_ in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for name, layer in slice_.named_children():
            layer.load_state_dict(alex.features[int(name)].state_dict())
    model = model.to(device).eval()

    @torch.inference_mode()
    def distance(generated: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
        g = to_tensor_batch([generated], size, 3).to(device) * 2 - 1
        c = to_tensor_batch(candidates, size, 3).to(device) * 2 - 1
        return model(g.expand(len(c), -1, -1, -1), c).reshape(-1).double().cpu().numpy()

    return distance


def rerank(
    generated: Sequence[np.ndarray],
    candidates: np.ndarray,
    load_train: Callable[[np.ndarray], list[np.ndarray]],
    distance: PairDistance,
    on_row: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances of each generated image to its candidate training images, sorted."""
    out = np.full(candidates.shape, np.inf)
    for j, (image, row) in enumerate(zip(generated, candidates)):
        valid = row[row >= 0]
        out[j, : len(valid)] = distance(image, load_train(valid))
        if on_row:
            on_row(j)
    return sort_neighbours(candidates, out)


def make_pair_distance(name: str, weights_path: str | None, device):
    """The re-rank distance for `name` (None for `none`)."""
    if name == "none":
        return None
    if name == "l2":
        return l2_distance()
    if name == "aligned":  # offline and shift-robust: normalised distance minimised over shifts of up to 3 px
        return aligned_distance()
    if name == "lpips":
        return lpips_distance(weights_path, device=device)
    raise ValueError(f"rerank must be one of {', '.join(RERANKERS)}; got {name!r}")
