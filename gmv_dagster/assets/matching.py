"""The usearch index over training embeddings, and each generated image's top-k matches."""


import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ..resources import DeviceResource, GmvHome
from ..valuation.images import load_images
from ..valuation.incremental import index_plan, rows_of_keys
from ..valuation.matching import IndexShard, MatchParams, matches_table, sample_recall, search_shards
from ..valuation.rerank import make_pair_distance, rerank
from ..valuation.search import HnswParams, build_hnsw, load_index, save_index, update_hnsw
from ..valuation.versions import embeddings_version
from .automation import ALL_SHARDS, BATCH_TABLE, FOLLOWS_INPUTS, generated_batches
from .metadata import GPU_TAGS, Progress, config_metadata, embedding_matrix, own_partition, timed, versioned

INDEX_FILE = "train_index.usearch"
INDEX_KEYS = "train_index_keys.parquet"
INDEX_SPEC = "train_index.json"


class TrainIndexConfig(dg.Config):
    index_mode: str = Field(default="auto", description="auto | exact | hnsw; auto = exact below exact_below")
    exact_below: int = Field(default=5000, ge=0, description="training images below which auto uses exact search")
    metric: str = Field(default="cos", description="cos | l2sq")
    dtype: str = Field(default="f16", description="f32 | f16 | i8 (vectors stored in the index)")
    connectivity: int = Field(default=16, gt=0)
    expansion_add: int = Field(default=128, gt=0)
    expansion_search: int = Field(default=128, gt=0)
    threads: int = Field(default=1, ge=0, description="build threads; 1 = identical index on every run, 0 = all cores (faster, not reproducible)")
    rebuild: bool = Field(default=False, description="build from scratch even where the index could be extended")
    recall_k: int = Field(default=10, gt=0)
    recall_sample: int = Field(default=200, gt=0, description="queries for recall@k against exact")
    seed: int = 0


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _file_sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:24]


def _previous_index(folder: Path, spec: dict):
    """(spec, keys, index) of the index on disk when it was built the way `spec` asks, else None."""
    try:
        previous = json.loads((folder / INDEX_SPEC).read_text())
        if previous.get("mode") != "hnsw" or any(previous.get(k) != spec[k] for k in ("params", "dim", "embedder")):
            return None
        keys = pl.read_parquet(folder / INDEX_KEYS)
        index = load_index(folder / INDEX_FILE, HnswParams(**spec["params"]))
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
        return None
    return (previous, keys, index) if len(index) == keys.height else None


@dg.asset(group_name="matching", code_version="2", op_tags=GPU_TAGS, automation_condition=FOLLOWS_INPUTS)
def train_index(context, config: TrainIndexConfig, train_embeddings: pl.DataFrame, gmv_home: GmvHome,
                matching_device: DeviceResource) -> dg.MaterializeResult:
    """usearch HNSW index over the training embeddings (files under GMV_HOME/index), or exact mode.

    New training images are added to the existing index and removed ones dropped from it, where the
    index parameters and the embedder are unchanged; otherwise (or with `rebuild`) it is built anew.
    """
    params = HnswParams(config.metric, config.dtype, config.connectivity, config.expansion_add, config.expansion_search)
    mode = MatchParams(index_mode=config.index_mode, exact_below=config.exact_below, metric=config.metric)
    train = embedding_matrix(train_embeddings)
    folder = index_folder(gmv_home, own_partition(context))
    spec = {"mode": "exact" if mode.uses_exact(len(train)) else "hnsw", "n": len(train), "dim": int(train.shape[1]),
            "params": params.as_dict(), "embedder": train_embeddings["embedder"][0] if train_embeddings.height else "",
            "embeddings_version": embeddings_version(train_embeddings)}
    metadata: dict = {"mode": spec["mode"], "n": len(train), "dim": spec["dim"], **params.as_dict(), **config_metadata(config)}
    if spec["mode"] == "hnsw":
        previous = None if config.rebuild else _previous_index(folder, spec)
        current = train_embeddings.select("id", "content_hash")
        with timed(metadata, "build_seconds"):
            if previous is not None and previous[0]["embeddings_version"] == spec["embeddings_version"]:
                action, keys, index = "unchanged", previous[1], previous[2]
            elif previous is not None:
                plan = index_plan(previous[1], current)
                rows = rows_of_keys(plan.keys, train_embeddings["id"])[plan.add_keys.astype(np.int64)]
                index = update_hnsw(previous[2], plan.add_keys, train[rows], plan.remove_keys, config.threads)
                action, keys = f"extended: +{len(plan.add_keys)} -{len(plan.remove_keys)}", plan.keys
            else:
                plan = index_plan(None, current)
                index = build_hnsw(train, params, config.threads)
                action, keys = "built", plan.keys
        if not action == "unchanged":
            save_index(index, folder / INDEX_FILE)
            _write_atomically(folder / INDEX_KEYS, keys.write_parquet)
        key_rows = rows_of_keys(keys, train_embeddings["id"])
        # Queries: a seeded sample of training vectors (each finds itself; the rest is the test).
        recall = sample_recall(train, train, [IndexShard(0, len(train), index, key_rows)], min(config.recall_k, len(train)),
                               config.metric, config.recall_sample, config.seed, matching_device.torch_device())
        metadata.update({
            "action": action, "path": str(folder / INDEX_FILE), "size_bytes": os.path.getsize(folder / INDEX_FILE),
            f"recall@{config.recall_k}": recall,
            "vectors_per_second": round(len(train) / max(metadata["build_seconds"], 1e-9), 1),
        })
        context.log.info(f"HNSW over {len(train)} vectors {action} in {metadata['build_seconds']} s, recall {recall:.4f}")
        version = _file_sha256(folder / INDEX_FILE, folder / INDEX_KEYS)
    else:
        version = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]
    # The spec goes last: it names the embeddings the files on disk were made from.
    _write_atomically(folder / INDEX_SPEC, lambda p: p.write_text(json.dumps(spec)))
    return dg.MaterializeResult(metadata={**metadata, "content_version": version}, data_version=dg.DataVersion(version))


def index_folder(gmv_home: GmvHome, shard: str | None) -> Path:
    """GMV_HOME/index, or GMV_HOME/index/<shard> for one shard of the training images."""
    return gmv_home.subdir("index" if shard is None else f"index/{shard}")


def open_index(gmv_home: GmvHome, train_embeddings: pl.DataFrame) -> tuple[list[dict], list[IndexShard]]:
    """(spec, IndexShard) of each shard of these training embeddings (one, unsharded), rows in table order.

    Refuses an index that was made from other embeddings than these: the values would be wrong.
    """
    if "shard" in train_embeddings.columns:
        parts = train_embeddings.with_row_index("_row").group_by("shard", maintain_order=True).agg(
            pl.col("_row").min().alias("start"), pl.col("_row").max().alias("last"))
        slices = [(key, start, last + 1) for key, start, last in parts.iter_rows()]
    else:
        slices = [(None, 0, train_embeddings.height)]
    specs, shards = [], []
    for key, start, stop in slices:
        rows = train_embeddings.slice(start, stop - start)
        folder = index_folder(gmv_home, key)
        spec_path = folder / INDEX_SPEC
        if not spec_path.is_file():
            raise FileNotFoundError(f"{spec_path} does not exist: materialise train_index"
                                    + (f" (shard {key})" if key else ""))
        spec = json.loads(spec_path.read_text())
        if spec.get("embeddings_version") != embeddings_version(rows):
            raise ValueError(
                f"train_index{f' shard {key}' if key else ''} was made from other training embeddings "
                f"({spec.get('n')} x {spec.get('dim')}) than the current ones ({rows.height}): rematerialise train_index"
            )
        index = key_rows = None
        if spec["mode"] == "hnsw":
            index = load_index(folder / INDEX_FILE, HnswParams(**spec["params"]))
            key_rows = rows_of_keys(pl.read_parquet(folder / INDEX_KEYS), rows["id"])
        specs.append(spec)
        shards.append(IndexShard(start, stop, index, key_rows))
    if len({spec["params"]["metric"] for spec in specs}) > 1:
        raise ValueError("the shards of train_index use different metrics: rematerialise every shard with one config")
    return specs, shards


class MatchesConfig(dg.Config):
    k: int = Field(default=10, gt=0, description="contributors kept per generated image (top k)")
    candidates: int = Field(default=50, gt=0, description="K': recalled before re-ranking")
    rerank: str = Field(default="none", description="none | l2 (pixels) | lpips (local AlexNet file)")
    rerank_weights_path: str | None = Field(default=None, description="AlexNet state dict for rerank=lpips")
    recall_sample: int = Field(default=200, gt=0, description="generated images checked against exact search")
    seed: int = 0


@dg.asset(group_name="matching", code_version="2", op_tags=GPU_TAGS, partitions_def=generated_batches,
          deps=[dg.AssetDep(train_index, partition_mapping=ALL_SHARDS)], ins={"train_embeddings": dg.AssetIn(partition_mapping=ALL_SHARDS)},
          metadata=BATCH_TABLE, automation_condition=FOLLOWS_INPUTS)
def matches(
    context, config: MatchesConfig, train_embeddings: pl.DataFrame, generated_embeddings: pl.DataFrame,
    training_images: pl.DataFrame, generated_images: pl.DataFrame, gmv_home: GmvHome, matching_device: DeviceResource,
) -> dg.Output[pl.DataFrame]:
    """Each generated image's k nearest training images (gen_id, train_id, rank, distance, batch)."""
    if not train_embeddings["id"].equals(training_images["id"]):
        raise ValueError("train_embeddings do not hold the current training images in their order (a shard was not "
                         "rematerialised after training_images changed): materialise every shard of train_embeddings "
                         "and train_index")
    specs, shards = open_index(gmv_home, train_embeddings)
    train, gen = embedding_matrix(train_embeddings), embedding_matrix(generated_embeddings)
    params = MatchParams(k=config.k, candidates=max(config.candidates, config.k), metric=specs[0]["params"]["metric"])
    device = matching_device.torch_device()
    timings: dict = {}
    with timed(timings, "search_seconds"):
        idx, dist = search_shards(train, gen, params, shards, device)
    pair_distance = make_pair_distance(config.rerank, config.rerank_weights_path, device)
    if pair_distance is not None:
        uris = training_images["uri"].to_list()
        progress = Progress(context.log, f"re-ranking with {config.rerank}", len(gen))
        with timed(timings, "rerank_seconds"):
            idx, dist = rerank(load_images(generated_images["uri"].to_list()), idx,
                               lambda rows: load_images([uris[i] for i in rows]), pair_distance,
                               lambda _: progress(1))
    df = matches_table(generated_embeddings["id"], train_embeddings["id"], idx, dist, config.k).with_columns(
        batch=pl.lit(context.partition_key))
    modes = sorted({spec["mode"] for spec in specs})
    extra = {"mode": "+".join(modes), "shards": len(shards), "k": config.k, "candidates": params.candidates, "rerank": config.rerank, **timings,
             **config_metadata(config)}
    if "hnsw" in modes:
        extra[f"recall@{config.k}_vs_exact"] = sample_recall(
            train, gen, shards, config.k, params.metric, config.recall_sample, config.seed, device)
    return versioned(df, **extra)
