"""The index over training embeddings, and each generated image's top-k matches."""

from dataclasses import replace
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from ...common.timing import timed
from ...method.core import (
    DEFAULTS,
    TEMPERATURE_DIVISOR,
    TEMPERATURE_SAMPLE,
    Reranking,
    fit_temperature,
    match,
)
from ...method.index import build_or_extend, index_spec, open_index
from ...method.matching import (
    INDEX_MODES,
    IndexShard,
    MatchParams,
    matches_table,
    sample_recall,
    shard_vectors,
)
from ...method.rerank import RERANKERS, make_pair_distance
from ...method.search import DTYPES, METRICS, HnswParams
from ...resources import DeviceResource, EmbedderResource, GmvHome
from ...sources.images import ImageSequence, load_images
from ..automation import (
    ALL_SHARDS,
    BATCH_TABLE,
    FOLLOWS_INPUTS,
    TRAIN_IDS,
    TRAIN_URIS,
    generated_batches,
)
from ..metadata import (
    GPU_TAGS,
    Progress,
    config_metadata,
    embedding_matrix,
    own_partition,
    stored_train_vectors,
    versioned,
)
from .embeddings import mirrored_embeddings

_M, _H = DEFAULTS.match, DEFAULTS.hnsw


class TrainIndexConfig(dg.Config):
    index_mode: str = Field(
        default=_M.index_mode, description=f"{' | '.join(INDEX_MODES)}; auto = exact below exact_below"
    )
    exact_below: int = Field(
        default=_M.exact_below, ge=0, description="training images below which auto uses exact search"
    )
    metric: str = Field(default=_M.metric, description=" | ".join(METRICS))
    dtype: str = Field(default=_H.dtype, description=f"{' | '.join(DTYPES)} (vectors stored in the index)")
    connectivity: int = Field(default=_H.connectivity, gt=0)
    expansion_add: int = Field(default=_H.expansion_add, gt=0)
    expansion_search: int = Field(default=_H.expansion_search, gt=0)
    threads: int = Field(
        default=1,
        ge=0,
        description="build threads; 1 = identical index on every run, 0 = all cores (faster, not reproducible)",
    )
    rebuild: bool = Field(default=False, description="build from scratch even where the index could be extended")
    recall_k: int = Field(default=10, gt=0)
    recall_sample: int = Field(default=200, gt=0, description="queries for recall@k against exact")
    seed: int = 0


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
    matching_device: DeviceResource,
) -> dg.MaterializeResult:
    """usearch HNSW index over the training embeddings (files under GMV_HOME/index), or exact mode.

    New training images are added to the existing index and removed ones dropped from it, where the
    index parameters and the embedder are unchanged; otherwise (or with `rebuild`) it is built anew.
    """
    params = HnswParams(config.metric, config.dtype, config.connectivity, config.expansion_add, config.expansion_search)
    mode = MatchParams(index_mode=config.index_mode, exact_below=config.exact_below, metric=config.metric)
    [(_, _, version, train)] = stored_train_vectors(gmv_home, train_embeddings)  # this shard's (or the one) file
    folder = index_folder(gmv_home, own_partition(context))
    embedder = train_embeddings["embedder"][0] if train_embeddings.height else ""
    spec = index_spec(mode, params, train, embedder, version)
    build = build_or_extend(folder, spec, train, train_embeddings, config.threads, config.rebuild)
    metadata: dict = {
        "mode": spec["mode"],
        "n": len(train),
        "dim": spec["dim"],
        **params.as_dict(),
        **config_metadata(config),
    }
    if spec["mode"] == "hnsw":
        # Queries: a seeded sample of training vectors (each finds itself; the rest is the test).
        recall = sample_recall(
            train,
            train,
            [build.shard],
            min(config.recall_k, len(train)),
            config.metric,
            config.recall_sample,
            config.seed,
            matching_device.torch_device(),
        )
        path = folder / "train_index.usearch"
        metadata.update(
            {
                "build_seconds": round(build.seconds, 3),
                "action": build.action,
                "path": str(path),
                "size_bytes": path.stat().st_size,
                f"recall@{config.recall_k}": recall,
                "vectors_per_second": round(len(train) / max(build.seconds, 1e-9), 1),
                "simd": str(build.shard.index.hardware_acceleration),  # usearch's distance kernel here ("serial": none)
            }
        )
        context.log.info(f"HNSW over {len(train)} vectors {build.action} in {build.seconds:.3f} s, recall {recall:.4f}")
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
    for key, rows, version, vectors in stored_train_vectors(gmv_home, train_embeddings):
        spec, shard = open_index(
            index_folder(gmv_home, key),
            train_embeddings["id"][rows],
            version,
            vectors,
            rows.start,
            f"train_index shard {key}" if key else "train_index",
        )
        specs.append(spec)
        shards.append(shard)
    if len({spec["params"]["metric"] for spec in specs}) > 1:
        raise ValueError("the shards of train_index use different metrics: rematerialise every shard with one config")
    return specs, shards


class RankingConfig(dg.Config):
    """How contributors are found and ranked: what `matches` uses and `credit_temperature` must fit to."""

    k: int = Field(default=_M.k, gt=0, description="contributors kept per generated image (top k)")
    candidates: int = Field(default=_M.candidates, gt=0, description="K': recalled before re-ranking")
    rerank: str = Field(
        default="none",
        description=f"{' | '.join(RERANKERS)}: none, l2 (pixels), aligned (offline, "
        "robust to shifts of up to 3 px), lpips (local AlexNet file)",
    )
    rerank_weights_path: str | None = Field(default=None, description="AlexNet state dict for rerank=lpips")

    def match_params(self, metric: str) -> MatchParams:
        return MatchParams(k=self.k, candidates=max(self.candidates, self.k), metric=metric)

    def ranking(self) -> dict:
        """What the ranking's distances depend on (K' as used: at least k), recorded by both assets."""
        return {"k": self.k, "candidates": max(self.candidates, self.k), "rerank": self.rerank}


class MatchesConfig(RankingConfig):
    flips: bool = Field(
        default=_M.flips,
        description="also match each generated image's mirror image (left-right), and take that orientation when it "
        "is much nearer (flip_ratio): finds mirror images of training images, which a generator trained with random "
        "flips emits; off where a mirror image is another thing (a digit, a letter). Costs a second embedding and "
        "search per generated image",
    )
    flip_ratio: float = Field(
        default=_M.flip_ratio,
        gt=0,
        le=1,
        description="with flips, a generated image is matched as a mirror image when its mirror image's nearest "
        "training image is nearer than flip_ratio x its own nearest's distance",
    )
    recall_sample: int = Field(
        default=200,
        ge=0,
        description="generated images checked against exact search over "
        "every training vector (the one part of a batch that grows with n: 1.5 s at 1M x 128); "
        "0: none (train_index's check still measures the index's recall)",
    )
    seed: int = 0

    def match_params(self, metric: str) -> MatchParams:
        return replace(super().match_params(metric), flips=self.flips, flip_ratio=self.flip_ratio)


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


class CreditTemperatureConfig(RankingConfig):
    sample: int = Field(default=TEMPERATURE_SAMPLE, gt=0, description="training images whose neighbours set the spread")
    divisor: float = Field(default=TEMPERATURE_DIVISOR, gt=0, description="tau = median (d_k - d_1) / divisor")
    seed: int = 0


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
    config: CreditTemperatureConfig,
    train_embeddings: pl.DataFrame,
    training_images: pl.DataFrame,
    gmv_home: GmvHome,
    matching_device: DeviceResource,
) -> dg.Output[pl.DataFrame]:
    """tau of the credit softmax, fitted to the similarity's own distance scale: the median gap between the 1st
    and the k-th nearest other training image of a seeded sample of training images, found the way `matches`
    finds a generated image's (same index, K' and re-rank), divided by `divisor` (method/core.py)."""
    _check_current(train_embeddings, training_images)
    specs, shards = open_index_shards(gmv_home, train_embeddings)
    train = shard_vectors(shards)
    params = config.match_params(specs[0]["params"]["metric"])
    device = matching_device.torch_device()
    pair_distance = make_pair_distance(config.rerank, config.rerank_weights_path, device)
    progress = Progress(
        context.log, f"re-ranking training neighbours with {config.rerank}", min(config.sample, len(train))
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
            config.sample,
            config.seed,
            config.divisor,
            lambda _: progress(1),
        )
    context.log.info(
        f"temperature {fit.temperature:.4g} = median spread {fit.median_spread:.4g} / {fit.divisor:g} "
        f"({fit.queries} training images, k = {fit.k}, rerank {config.rerank})"
    )
    row = {**config.ranking(), **fit.as_dict()}
    return versioned(pl.DataFrame([row]), **row, **timings, **config_metadata(config))


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
    config: MatchesConfig,
    train_embeddings: pl.DataFrame,
    generated_embeddings: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    gmv_home: GmvHome,
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
    params = config.match_params(specs[0]["params"]["metric"])
    device = matching_device.torch_device()
    reranking = None
    pair_distance = make_pair_distance(config.rerank, config.rerank_weights_path, device)
    if pair_distance is not None:
        progress = Progress(context.log, f"re-ranking with {config.rerank}", len(gen))
        # One generated image at a time (a batch of large images is never held whole), with its candidates' images.
        reranking = Reranking(
            pair_distance,
            ImageSequence(generated_images["uri"].to_list()),
            _train_loader(training_images),
            lambda _: progress(1),
        )
    timings: dict = {}
    mirrored = None
    if config.flips:
        with timed(timings, "mirror_embed_seconds", digits=None):
            mirrored = mirrored_embeddings(
                generated_images, generated_embeddings, embedder, embedding_device, gmv_home, context.log
            )
    idx, dist = match(train, gen, params, shards, device, reranking, timings, mirrored)
    df = matches_table(generated_embeddings["id"], train_embeddings["id"], idx, dist, config.k).with_columns(
        batch=pl.lit(context.partition_key)
    )
    modes = sorted({spec["mode"] for spec in specs})
    extra = {
        "mode": "+".join(modes),
        "shards": len(shards),
        **config.ranking(),
        "flips": config.flips,
        "flip_ratio": config.flip_ratio,
        **{k: round(v, 3) for k, v in timings.items()},
        **config_metadata(config),
    }
    if "hnsw" in modes and config.recall_sample:
        extra[f"recall@{config.k}_vs_exact"] = sample_recall(
            train, gen, shards, config.k, params.metric, config.recall_sample, config.seed, device
        )
    return versioned(df, **extra)
