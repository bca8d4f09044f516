"""One call that values a training set against a generated set, without Dagster.

It runs the same core (core.py) as the Dagster assets, step by step, so it gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ..common.sampling import seeded_rows
from ..sources.images import load_images, normalise_array_image
from ..sources.manifests import arrays_manifest, manifest_from_path
from .core import MethodSettings, Reranking, fit_temperature, match, mirror, value
from .embedders import DEFAULT_BACKBONE, Embedder, make_embedder
from .matching import IndexShard, matches_table
from .quality import DEFAULT_METRIC, REFERENCE_SIZE, calibrate, load_quality_model
from .rerank import make_pair_distance
from .search import build_hnsw
from .similarity import SimilarityParams, embedder_kwargs, train_similarity

ImageSet = str | Path | np.ndarray


@dataclass(frozen=True)
class ValuationConfig:
    backbone: str = DEFAULT_BACKBONE
    image_size: int | None = None
    weights_path: str | None = None  # for `similarity`: a trained file; None trains it here on the training images
    similarity: SimilarityParams = field(default_factory=SimilarityParams)
    method: MethodSettings = field(default_factory=MethodSettings)
    rerank: str = "none"
    rerank_weights_path: str | None = None
    quality_metric: str = DEFAULT_METRIC
    quality_weights_path: str | None = None
    quality_reference: int = REFERENCE_SIZE
    seed: int = 0


@dataclass
class ValuationResult:
    """Values per training image and the attributions behind them."""

    values: pl.DataFrame  # train_id, value, n_generated, rank
    credits: pl.DataFrame  # gen_id, train_id, rank, distance, weight, credit
    quality: pl.DataFrame  # gen_id, raw_score, q
    temperature: float  # tau used (config's, or fitted to the similarity's distances: core.fit_temperature)
    training_images: pl.DataFrame
    generated_images: pl.DataFrame
    config: ValuationConfig

    def top(self, n: int = 10) -> pl.DataFrame:
        return self.values.head(n).join(
            self.training_images.select("id", "label"), left_on="train_id", right_on="id", how="left"
        )

    def attribution(self, gen_id: str) -> pl.DataFrame:
        """The training images that generated image `gen_id` came from, with weights and credit."""
        return self.credits.filter(pl.col("gen_id") == gen_id).sort("rank")


def _resolve(images: ImageSet, labels, prefix: str) -> tuple[pl.DataFrame, list[np.ndarray]]:
    if isinstance(images, (str, Path)):
        manifest = manifest_from_path(str(images)).manifest  # bad images are refused (on_bad_image: fail)
        return manifest, load_images(manifest["uri"].to_list())
    arr = np.asarray(images)
    return arrays_manifest(arr, labels, prefix), [normalise_array_image(a) for a in arr]


def _embedder(cfg: ValuationConfig, train_images: list[np.ndarray], device) -> Embedder:
    """The configured embedder; the learned `similarity` without a weights file is trained on `train_images`
    first, as the similarity_model asset trains it (same images in the same order, same params: same weights)."""
    if cfg.backbone == "similarity" and cfg.weights_path is None:
        if cfg.image_size not in (None, cfg.similarity.image_size):
            raise ValueError(f"image_size {cfg.image_size} for the similarity: set similarity.image_size instead")
        return Embedder(**embedder_kwargs(train_similarity(train_images, cfg.similarity, device)))
    return make_embedder(cfg.backbone, cfg.image_size, cfg.weights_path)


def value_training_set(
    train: ImageSet,
    generated: ImageSet,
    config: ValuationConfig | None = None,
    *,
    train_labels=None,
    generated_labels=None,
    device: str | torch.device = "cpu",
    work_dir: Path | None = None,
) -> ValuationResult:
    """Value every training image by the GMValuator method.

    `train` / `generated`: a folder of images, a `.npz` with `images`, or an array (N,H,W[,C]).
    """
    cfg = config or ValuationConfig()
    train_manifest, train_images = _resolve(train, train_labels, "train")
    gen_manifest, gen_images = _resolve(generated, generated_labels, "generated")
    if not gen_images:
        raise ValueError("the generated set is empty: nothing to value")

    embedder = _embedder(cfg, train_images, device).to(torch.device(device))
    train_emb = embedder.embed(train_images, device)
    gen_emb = embedder.embed(gen_images, device)

    m = cfg.method
    index = None if m.match.uses_exact(len(train_emb)) else build_hnsw(train_emb, m.hnsw)
    pair_distance = make_pair_distance(cfg.rerank, cfg.rerank_weights_path, device)
    load_train = lambda rows: [train_images[i] for i in rows]  # noqa: E731
    reranking = None if pair_distance is None else Reranking(pair_distance, gen_images, load_train)
    shards = [IndexShard(0, len(train_emb), index)]
    mirrored = embedder.embed([mirror(image) for image in gen_images], device) if m.match.flips else None
    idx, dist = match(train_emb, gen_emb, m.match, shards, device, reranking, mirrored=mirrored)
    matches = matches_table(gen_manifest["id"], train_manifest["id"], idx, dist, m.match.k)

    reference = [train_images[i] for i in seeded_rows(len(train_images), cfg.quality_reference, cfg.seed)]
    model = load_quality_model(
        calibrate(cfg.quality_metric, reference, device, cfg.seed, work_dir or Path.cwd(), cfg.quality_weights_path),
        device,
    )
    # the pipeline's references: of ranks 1..3 of the k matches, those about as near as the nearest
    refs = model.reference_rows(idx[:, : m.match.k], dist[:, : m.match.k])
    raw, q = model.score(gen_images, references=[load_train(rows) for rows in refs])
    quality = pl.DataFrame({"gen_id": gen_manifest["id"], "raw_score": raw, "q": q})

    temperature = m.temperature_or(
        lambda: (
            fit_temperature(train_emb, m.match, shards, device, pair_distance, load_train, seed=cfg.seed).temperature
        )
    )
    credits, values = value(matches, quality, train_manifest["id"], temperature)
    return ValuationResult(values, credits, quality, temperature, train_manifest, gen_manifest, cfg)
