"""The feature extractor f, chosen by config."""


from functools import lru_cache

import dagster as dg
from pydantic import Field

from ..method.embedders import Embedder, make_embedder


@lru_cache(maxsize=4)
def _cached(backbone: str, image_size: int | None, weights_path: str | None) -> Embedder:
    return make_embedder(backbone, image_size, weights_path)


class EmbedderResource(dg.ConfigurableResource):
    """`pixels` (default, chosen by measured C1 on the demo), `efficientnet_lite0`, `torchvision:<arch>`."""

    backbone: str = Field(default="pixels", description="pixels | efficientnet_lite0 | torchvision:<arch>")
    image_size: int | None = Field(default=None, description="input size in px; default per backbone (32/64/224)")
    weights_path: str | None = Field(
        default=None, description="local weights file; torchvision falls back to $TORCH_HOME/hub/checkpoints"
    )

    def load(self) -> Embedder:
        """The embedder; a missing weights file raises WeightsNotFoundError, never a silent switch."""
        return _cached(self.backbone, self.image_size, self.weights_path)
