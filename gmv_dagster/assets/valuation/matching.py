"""The index over training embeddings, and each generated image's top-k matches."""

from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from ...common.timing import timed
from ...method.core import (
    Reranking,
    fit_temperature,
    match,
)
from ...method.index import build_or_extend, index_spec, open_index
from ...method.matching import (
    IndexShard,
    matches_table,
    sample_recall,
    shard_vectors,
)
from ...pipeline.vectors import embedding_matrix
from ...resources import DeviceResource, EmbedderResource, GmvHome, MethodResource
from ...sources.images import ImageSequence, load_images
from ..automation import (
    ALL_SHARDS,
    BATCH_TABLE,
    FOLLOWS_INPUTS,
    TRAIN_IDS,
    TRAIN_URIS,
    generated_batches,
)
from ..metadata import config_metadata, versioned
from ..steps import GPU_TAGS, Progress, own_partition
from .embeddings import mirrored_embeddings


class TrainIndexConfig(dg.Config):
    """How the index is built; what it is built with (metric, dtype, HNSW parameters, mode) is the method resource's."""

    threads: int = Field(
        default=1,
        ge=0,
        description="build threads; 1 = identical index on every run, 0 = all cores (faster, not reproducible)",
    )
    rebuild: bool = Field(default=False, description="build from scratch even where the index could be extended")


@dg.asset(
    group_name="matching",
    code_version="4",
    op_tags=GPU_TAGS,
    automation_condition=FOLLOWS_INPUTS,
    kinds={"usearch", "pytorch"},
)
def train_index(
    context,
    config: TrainIndexConfig,
    train_embeddings: pl.DataFrame,
    gmv_home: GmvHome,
    method: MethodResource,
    matching_device: DeviceResource,
) -> dg.MaterializeResult:
    """usearch HNSW index over the training embeddings (files under GMV_HOME/index), or exact mode.

    New training images are added to the existing index and removed ones dropped from it, where the
    index parameters and the embedder are unchanged; otherwise (or with `rebuild`) it is built anew.
    """
    settings = method.settings()
    params, mode = settings.hnsw, settings.match
    device = matching_device.torch_device()
    [stored] = gmv_home.vector_store.shards(train_embeddings)  # this shard's (or the one) file
    version, train = stored.version, stored.vectors
    folder = index_folder(gmv_home, own_partition(context))
    embedder = train_embeddings["embedder"][0] if train_embeddings.height else ""
    spec = index_spec(mode, params, train, embedder, version)
    build = build_or_extend(folder, spec, train, train_embeddings, config.threads, config.rebuild)
    metadata: dict = {
        "mode": spec["mode"],
        "n": len(train),
        "dim": spec["dim"],
        **params.as_dict(),
        **config_metadata(config, method),
    }
    if spec["mode"] == "hnsw":
        path = folder / "train_index.usearch"
        metadata.update(
            {
                "build_seconds": round(build.seconds, 3),
                "action": build.action,
                "path": str(path),
                "size_bytes": path.stat().st_size,
                "vectors_per_second": round(len(train) / max(build.seconds, 1e-9), 1),
                "simd": str(build.shard.index.hardware_acceleration),  # usearch's distance kernel here ("serial": none)
            }
        )
        recall = ""
        if method.recall_sample:
            # Queries: a seeded sample of training vectors (each finds itself; the rest is the test).
            k = min(method.recall_k, len(train))
            value = sample_recall(
                train, train, [build.shard], k, params.metric, method.recall_sample, method.seed, device
            )
            metadata[f"recall@{method.recall_k}"] = value
            recall = f", recall {value:.4f}"
        context.log.info(f"HNSW over {len(train)} vectors {build.action} in {build.seconds:.3f} s{recall}")
    return dg.MaterializeResult(
        metadata={**metadata, "content_version": build.version}, data_version=dg.DataVersion(build.version)
    )


def index_folder(gmv_home: GmvHome, shard: str | None) -> Path:
    """GMV_HOME/index, or GMV_HOME/index/<shard> for one shard of the training images."""
    return gmv_home.subdir("index" if shard is None else f"index/{shard}")


def open_index_shards(gmv_home: GmvHome, train_embeddings: pl.DataFrame) -> tuple[list[dict], list[IndexShard]]:
    """(spec, IndexShard) of each shard of these training embeddings (one, unsharded), rows in table order, each with
    its vectors memory-mapped (`shard_vectors` joins them): `train_embeddings` needs only its ids (TRAIN_IDS).

    Refuses an index that was made from other embeddings than the latest train_embeddings (their stored version):
    the values would be wrong.
    """
    specs, shards = [], []
    for stored in gmv_home.vector_store.shards(train_embeddings):
        key = stored.key
        spec, shard = open_index(
            index_folder(gmv_home, key),
            train_embeddings["id"][stored.rows],
            stored.version,
            stored.vectors,
            stored.rows.start,
            f"train_index shard {key}" if key else "train_index",
        )
        specs.append(spec)
        shards.append(shard)
    if len({spec["params"]["metric"] for spec in specs}) > 1:
        raise ValueError("the shards of train_index use different metrics: rematerialise every shard with one config")
    return specs, shards


def _train_loader(training_images: pl.DataFrame):
    """Training rows -> their images (for a re-rank)."""
    uris = training_images["uri"].to_list()
    return lambda rows: load_images([uris[i] for i in rows])


def _check_current(train_embeddings: pl.DataFrame, training_images: pl.DataFrame) -> None:
    if not train_embeddings["id"].equals(training_images["id"]):
        raise ValueError(
            "train_embeddings do not hold the current training images in their order (a shard was not "
            "rematerialised after training_images changed): materialise every shard of train_embeddings "
            "and train_index"
        )


@dg.asset(
    group_name="matching",
    code_version="1",
    op_tags=GPU_TAGS,
    deps=[dg.AssetDep(train_index, partition_mapping=ALL_SHARDS)],
    ins={"train_embeddings": TRAIN_IDS, "training_images": TRAIN_URIS},
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars", "pytorch"},
)
def credit_temperature(
    context,
    train_embeddings: pl.DataFrame,
    training_images: pl.DataFrame,
    gmv_home: GmvHome,
    method: MethodResource,
    matching_device: DeviceResource,
) -> dg.Output[pl.DataFrame]:
    """tau of the credit softmax, fitted to the similarity's own distance scale: the median gap between the 1st
        and the k-th nearest other training image of a seeded sample of training images, found the way `matches`
        finds a generated image's (same index, K' and re-rank), divided by the method's `temperature_divisor`
    (method/core.py)."""
    _check_current(train_embeddings, training_images)
    specs, shards = open_index_shards(gmv_home, train_embeddings)
    train = shard_vectors(shards)
    params = method.settings(specs[0]["params"]["metric"]).match
    device = matching_device.torch_device()
    pair_distance = method.pair_distance(device)
    progress = Progress(
        context.log, f"re-ranking training neighbours with {method.rerank}", min(method.temperature_sample, len(train))
    )
    timings: dict = {}
    with timed(timings, "seconds"):
        fit = fit_temperature(
            train,
            params,
            shards,
            device,
            pair_distance,
            _train_loader(training_images),
            method.temperature_sample,
            method.seed,
            method.temperature_divisor,
            lambda _: progress(1),
        )
    context.log.info(
        f"temperature {fit.temperature:.4g} = median spread {fit.median_spread:.4g} / {fit.divisor:g} "
        f"({fit.queries} training images, k = {fit.k}, rerank {method.rerank})"
    )
    row = {**method.ranking(), **fit.as_dict()}
    return versioned(pl.DataFrame([row]), **row, **timings, **config_metadata(method=method))


@dg.asset(
    group_name="matching",
    code_version="2",
    op_tags=GPU_TAGS,
    partitions_def=generated_batches,
    deps=[dg.AssetDep(train_index, partition_mapping=ALL_SHARDS)],
    ins={"train_embeddings": TRAIN_IDS, "training_images": TRAIN_URIS},
    metadata=BATCH_TABLE,
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars", "pytorch"},
)
def matches(
    context,
    train_embeddings: pl.DataFrame,
    generated_embeddings: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    gmv_home: GmvHome,
    method: MethodResource,
    matching_device: DeviceResource,
    embedder: EmbedderResource,
    embedding_device: DeviceResource,
) -> dg.Output[pl.DataFrame]:
    """Each generated image's k nearest training images (gen_id, train_id, rank, distance, batch); with `flips`,
    in either left-right orientation (its mirror image embedded by the embedder and device of
    generated_embeddings)."""
    _check_current(train_embeddings, training_images)
    specs, shards = open_index_shards(gmv_home, train_embeddings)
    train, gen = shard_vectors(shards), embedding_matrix(generated_embeddings)
    params = method.settings(specs[0]["params"]["metric"]).match
    device = matching_device.torch_device()
    reranking = None
    pair_distance = method.pair_distance(device)
    if pair_distance is not None:
        progress = Progress(context.log, f"re-ranking with {method.rerank}", len(gen))
        # One generated image at a time (a batch of large images is never held whole), with its candidates' images.
        reranking = Reranking(
            pair_distance,
            ImageSequence(generated_images["uri"].to_list()),
            _train_loader(training_images),
            lambda _: progress(1),
        )
    timings: dict = {}
    mirrored = None
    if params.flips:
        with timed(timings, "mirror_embed_seconds", digits=None):
            mirrored = mirrored_embeddings(
                generated_images, generated_embeddings, embedder, embedding_device, gmv_home, context.log
            )
    idx, dist = match(train, gen, params, shards, device, reranking, timings, mirrored)
    df = matches_table(generated_embeddings["id"], train_embeddings["id"], idx, dist, params.k).with_columns(
        batch=pl.lit(context.partition_key)
    )
    modes = sorted({spec["mode"] for spec in specs})
    extra = {
        "mode": "+".join(modes),
        "shards": len(shards),
        **method.ranking(),
        "flips": params.flips,
        "flip_ratio": params.flip_ratio,
        **{k: round(v, 3) for k, v in timings.items()},
        **config_metadata(method=method),
    }
    if "hnsw" in modes and method.recall_sample:
        extra[f"recall@{params.k}_vs_exact"] = sample_recall(
            train, gen, shards, params.k, params.metric, method.recall_sample, method.seed, device
        )
    return versioned(df, **extra)
