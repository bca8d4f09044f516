"""Gates beside the assets they guard: each records the actual value and the threshold it was held to.

Blocking where a wrong number would otherwise flow downstream into the values.
"""

import warnings

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...method.matching import sample_recall, shard_vectors
from ...pipeline.vectors import embedding_matrix, finite_rows
from ...resources import DeviceResource, EmbedderResource, GmvHome, MethodResource
from ..automation import TRAIN_IDS, TRAIN_URIS, generated_batches, train_shards
from . import credit, embeddings, matching, quality
from .matching import open_index_shards

# Checks partitioned as their assets (valuation_checks); Dagster 1.13 calls the parameter preview.
warnings.filterwarnings(
    "ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)


def _embeddings_ok(
    ids: pl.Series, emb: np.ndarray, embedder: EmbedderResource, gmv_home: GmvHome
) -> dg.AssetCheckResult:
    expected = embedder.load_stored(gmv_home).dim
    finite = finite_rows(emb)
    bad = ids.filter(~pl.Series(finite)).head(3).to_list()
    return dg.AssetCheckResult(
        passed=bool(finite.all()) and emb.shape[1] == expected,
        metadata={
            "dim": int(emb.shape[1]),
            "expected_dim": expected,
            "non_finite_rows": int((~finite).sum()),
            "first_non_finite_ids": ", ".join(bad) or "none",
        },
    )


def train_embeddings_finite(
    train_embeddings: pl.DataFrame,
    embedder: EmbedderResource,
    gmv_home: GmvHome,
) -> dg.AssetCheckResult:
    """Every training embedding (of the shard) is finite and has the embedder's dimension (read from the vector store
    a block at a time)."""
    return _embeddings_ok(
        train_embeddings["id"], gmv_home.vector_store.train_vectors(train_embeddings), embedder, gmv_home
    )


@dg.asset_check(asset=embeddings.generated_embeddings, blocking=True, partitions_def=generated_batches)
def generated_embeddings_finite(
    generated_embeddings: pl.DataFrame,
    embedder: EmbedderResource,
    gmv_home: GmvHome,
) -> dg.AssetCheckResult:
    """Every generated-image embedding of the batch is finite and has the embedder's dimension."""
    return _embeddings_ok(generated_embeddings["id"], embedding_matrix(generated_embeddings), embedder, gmv_home)


class RecallCheckConfig(dg.Config):
    threshold: float = Field(default=0.95, ge=0, le=1, description="lowest acceptable recall@k against exact search")


def index_recall(
    config: RecallCheckConfig,
    train_embeddings: pl.DataFrame,
    gmv_home: GmvHome,
    method: MethodResource,
    matching_device: DeviceResource,
) -> dg.AssetCheckResult:
    """recall@k of the saved HNSW index (of the shard) against exact search, on a seeded sample of training vectors
    (the method's recall_k, recall_sample and seed), above a threshold."""
    specs, shards = open_index_shards(gmv_home, train_embeddings)
    if all(shard.index is None for shard in shards):
        return dg.AssetCheckResult(
            passed=True, metadata={"mode": "exact", "recall": 1.0, "threshold": config.threshold}
        )
    if not method.recall_sample:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="not measured: the method's recall_sample is 0",
            metadata={"mode": "hnsw", "sample": 0, "threshold": config.threshold},
        )
    train = shard_vectors(shards)
    k = min(method.recall_k, len(train))
    recall = sample_recall(
        train,
        train,
        shards,
        k,
        specs[0]["params"]["metric"],
        method.recall_sample,
        method.seed,
        matching_device.torch_device(),
    )
    return dg.AssetCheckResult(
        passed=recall >= config.threshold,
        metadata={
            "mode": "hnsw",
            f"recall@{k}": recall,
            "threshold": config.threshold,
            "sample": method.recall_sample,
            "vectors": len(train),
        },
    )


@dg.asset_check(asset=quality.quality_scores, blocking=True, partitions_def=generated_batches)
def quality_in_unit_interval(quality_scores: pl.DataFrame) -> dg.AssetCheckResult:
    """Every q of the batch is a number in [0, 1]."""
    q = quality_scores["q"]
    bad = quality_scores.filter(~q.is_between(0.0, 1.0) | q.is_nan() | q.is_null())
    return dg.AssetCheckResult(
        passed=bad.height == 0,
        metadata={
            "min_q": float(q.min()) if len(q) else 0.0,
            "max_q": float(q.max()) if len(q) else 0.0,
            "out_of_range": bad.height,
            "first_out_of_range": ", ".join(bad["gen_id"].head(3)) or "none",
        },
    )


@dg.asset_check(
    asset=credit.credits,
    additional_ins={"training_images": TRAIN_URIS, "generated_images": dg.AssetIn()},
    blocking=True,
    partitions_def=generated_batches,
)
def credits_name_known_images(
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
) -> dg.AssetCheckResult:
    """No credit of the batch goes to, or comes from, an id that is not in the current manifests."""
    unknown_train = (
        credits.select("train_id").unique().join(training_images.select(train_id="id"), on="train_id", how="anti")
    )
    unknown_gen = credits.select("gen_id").unique().join(generated_images.select(gen_id="id"), on="gen_id", how="anti")
    return dg.AssetCheckResult(
        passed=unknown_train.height == 0 and unknown_gen.height == 0,
        metadata={
            "unknown_train_ids": unknown_train.height,
            "unknown_generated_ids": unknown_gen.height,
            "examples": ", ".join(unknown_train["train_id"].head(2).to_list() + unknown_gen["gen_id"].head(2).to_list())
            or "none",
        },
    )


def valuation_checks(n_shards: int = 1) -> list[dg.AssetChecksDefinition]:
    """Every check. A check of a partitioned asset is partitioned as it is: it reads only the batch or shard its run
    wrote (another shard may be mid-run in a run of its own) and its result names that partition. The training side's
    are made here, as its partitions depend on GMV_TRAIN_SHARDS (automation.with_train_shards)."""
    shards = train_shards(n_shards)
    return [
        dg.asset_check(asset=embeddings.train_embeddings, blocking=True, partitions_def=shards)(
            train_embeddings_finite
        ),
        generated_embeddings_finite,
        dg.asset_check(
            asset=matching.train_index,
            additional_ins={"train_embeddings": dg.AssetIn(metadata=TRAIN_IDS.metadata)},
            blocking=True,
            partitions_def=shards,
        )(index_recall),
        quality_in_unit_interval,
        credits_name_known_images,
        credit.values_sum_to_quality,
    ]
