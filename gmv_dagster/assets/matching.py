"""The usearch index over training embeddings, and each generated image's top-k matches."""


import json
import os

import dagster as dg
import polars as pl
from pydantic import Field

from ..resources import DeviceResource, GmvHome
from ..valuation.images import load_images
from ..valuation.matching import MatchParams, matches_table, recall_candidates, sample_recall
from ..valuation.rerank import make_pair_distance, rerank
from ..valuation.search import HnswParams, build_hnsw, load_index, save_index
from .metadata import GPU_TAGS, Progress, config_metadata, embedding_matrix, table_metadata, timed

INDEX_FILE = "train_index.usearch"
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
    recall_k: int = Field(default=10, gt=0)
    recall_sample: int = Field(default=200, gt=0, description="queries for recall@k against exact")
    seed: int = 0


@dg.asset(group_name="matching", code_version="1", op_tags=GPU_TAGS)
def train_index(context, config: TrainIndexConfig, train_embeddings: pl.DataFrame, gmv_home: GmvHome,
                matching_device: DeviceResource) -> dg.MaterializeResult:
    """usearch HNSW index over the training embeddings (a file under GMV_HOME), or exact mode."""
    params = HnswParams(config.metric, config.dtype, config.connectivity, config.expansion_add, config.expansion_search)
    mode = MatchParams(index_mode=config.index_mode, exact_below=config.exact_below, metric=config.metric)
    train = embedding_matrix(train_embeddings)
    folder = gmv_home.subdir("index")
    spec = {"mode": "exact" if mode.uses_exact(len(train)) else "hnsw", "n": len(train), "dim": int(train.shape[1]),
            "params": params.as_dict()}
    metadata: dict = {"mode": spec["mode"], "n": len(train), "dim": spec["dim"], **params.as_dict(), **config_metadata(config)}
    if spec["mode"] == "hnsw":
        with timed(metadata, "build_seconds"):
            index = build_hnsw(train, params, config.threads)
        save_index(index, folder / INDEX_FILE)
        # Queries: a seeded sample of training vectors (each finds itself; the rest is the test).
        recall = sample_recall(train, train, index, config.recall_k, config.metric, config.recall_sample, config.seed,
                               matching_device.torch_device())
        metadata.update({
            "path": str(folder / INDEX_FILE),
            "size_bytes": os.path.getsize(folder / INDEX_FILE),
            f"recall@{config.recall_k}": recall,
            "vectors_per_second": round(len(train) / max(metadata["build_seconds"], 1e-9), 1),
        })
        context.log.info(f"built HNSW over {len(train)} vectors in {metadata['build_seconds']} s, recall {recall:.4f}")
    (folder / INDEX_SPEC).write_text(json.dumps(spec))
    return dg.MaterializeResult(metadata=metadata)


class MatchesConfig(dg.Config):
    k: int = Field(default=10, gt=0, description="contributors kept per generated image (top k)")
    candidates: int = Field(default=50, gt=0, description="K': recalled before re-ranking")
    rerank: str = Field(default="none", description="none | l2 (pixels) | lpips (local AlexNet file)")
    rerank_weights_path: str | None = Field(default=None, description="AlexNet state dict for rerank=lpips")
    recall_sample: int = Field(default=200, gt=0, description="generated images checked against exact search")
    seed: int = 0


@dg.asset(group_name="matching", code_version="1", deps=[train_index], op_tags=GPU_TAGS)
def matches(
    context, config: MatchesConfig, train_embeddings: pl.DataFrame, generated_embeddings: pl.DataFrame,
    training_images: pl.DataFrame, generated_images: pl.DataFrame, gmv_home: GmvHome, matching_device: DeviceResource,
) -> pl.DataFrame:
    """Each generated image's k nearest training images (gen_id, train_id, rank, distance)."""
    folder = gmv_home.subdir("index")
    spec = json.loads((folder / INDEX_SPEC).read_text())
    train, gen = embedding_matrix(train_embeddings), embedding_matrix(generated_embeddings)
    if spec["n"] != len(train) or spec["dim"] != train.shape[1]:
        raise ValueError(
            f"train_index covers {spec['n']} x {spec['dim']} vectors but train_embeddings is {train.shape}: "
            "rematerialise train_index"
        )
    params = MatchParams(k=config.k, candidates=max(config.candidates, config.k), metric=spec["params"]["metric"],
                         index_mode=spec["mode"])
    hnsw = HnswParams(**spec["params"])
    index = load_index(folder / INDEX_FILE, hnsw) if spec["mode"] == "hnsw" else None
    device = matching_device.torch_device()
    timings: dict = {}
    with timed(timings, "search_seconds"):
        idx, dist = recall_candidates(train, gen, params, index, device)
    pair_distance = make_pair_distance(config.rerank, config.rerank_weights_path, device)
    if pair_distance is not None:
        uris = training_images["uri"].to_list()
        progress = Progress(context.log, f"re-ranking with {config.rerank}", len(gen))
        with timed(timings, "rerank_seconds"):
            idx, dist = rerank(load_images(generated_images["uri"].to_list()), idx,
                               lambda rows: load_images([uris[i] for i in rows]), pair_distance,
                               lambda _: progress(1))
    df = matches_table(generated_embeddings["id"], train_embeddings["id"], idx, dist, config.k)
    extra = {"mode": spec["mode"], "k": config.k, "candidates": params.candidates, "rerank": config.rerank, **timings,
             **config_metadata(config)}
    if index is not None:
        extra[f"recall@{config.k}_vs_exact"] = sample_recall(
            train, gen, index, config.k, params.metric, config.recall_sample, config.seed, device)
    context.add_output_metadata(table_metadata(df, **extra))
    return df
