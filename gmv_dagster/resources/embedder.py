"""The feature extractor f, chosen by config."""

from functools import lru_cache

import dagster as dg
import polars as pl
from pydantic import Field

from ..method.embedders import DEFAULT_BACKBONE, Embedder, make_embedder


@lru_cache(maxsize=4)
def _cached(backbone: str, image_size: int | None, weights_path: str | None) -> Embedder:
    return make_embedder(backbone, image_size, weights_path)


class EmbedderResource(dg.ConfigurableResource):
    """`similarity` (default: learned from the training images by the similarity_model asset; chosen by near-copy
    retrieval in two domains, bench/attribution.py), `pixels`, `efficientnet_lite0`, `torchvision:<arch>`."""

    backbone: str = Field(
        default=DEFAULT_BACKBONE, description="similarity | pixels | efficientnet_lite0 | torchvision:<arch>"
    )
    image_size: int | None = Field(default=None, description="input size in px; default per backbone (32/64/224)")
    weights_path: str | None = Field(
        default=None, description="local weights file; torchvision falls back to $TORCH_HOME/hub/checkpoints"
    )

    @property
    def learned(self) -> bool:
        """Whether the embedder is trained by the pipeline (its weights come from the similarity_model asset)."""
        return self.backbone == "similarity"

    def load(self, trained: pl.DataFrame | None = None) -> Embedder:
        """The embedder; for `similarity` the weights file of `trained` (the similarity_model table). A missing
        weights file raises WeightsNotFoundError, never a silent switch."""
        weights = self.weights_path
        if self.learned:
            weights = trained["weights_file"][0] if trained is not None and trained.height else None
        return _cached(self.backbone, self.image_size, weights)

    def load_stored(self, gmv_home) -> Embedder:
        """The embedder as last materialised, for code outside the embedding assets (checks, reports): for
        `similarity`, the weights of the stored similarity_model table."""
        return self.load(gmv_home.stored_rows("similarity_model") if self.learned else None)
