"""f(x) for every training and generated image, on the injected device; unchanged images are not embedded again."""

import hashlib
import json
import os
from dataclasses import replace

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...common.files import sha256_file, write_atomically
from ...method.core import mirror
from ...method.similarity import FORMAT as SIMILARITY_FORMAT
from ...method.similarity import SimilarityParams, load_similarity, train_similarity
from ...pipeline.shards import shard_slice, sibling_keys
from ...pipeline.vectors import (
    embedding_frame,
    in_manifest_order,
    remove_superseded,
    reusable_embeddings,
    reuse_plan,
    still_to_embed,
    write_vectors,
)
from ...pipeline.versions import embeddings_version
from ...resources import DeviceResource, EmbedderResource, GmvHome
from ...sources.images import ImageSequence, load_images
from ..automation import BATCH_TABLE, FOLLOWS_INPUTS, generated_batches
from ..metadata import config_metadata, versioned
from ..steps import GPU_TAGS, Progress, own_partition

_SIM = SimilarityParams()


def _loaded(embedder: EmbedderResource, device: DeviceResource, trained: pl.DataFrame):
    """(model on the device, device, dtype, fingerprint)."""
    model = embedder.load(trained)
    dev, dtype = device.torch_device(), device.torch_dtype()
    model.to(dev, dtype)
    return model, dev, dtype, model.fingerprint(dtype)


def _chunk(device: DeviceResource) -> int:
    """Images loaded and embedded at a time: what is held is bounded by it, not by the manifest."""
    return max(device.batch_size * 16, 4096)


def _embed_files(model, uris: list[str], device: DeviceResource, dtype, progress: Progress, turn=None) -> np.ndarray:
    """The vectors of the images at `uris` (each through `turn` first, where given), a chunk of files at a time."""
    dev, chunk = device.torch_device(), _chunk(device)
    out = np.empty((len(uris), model.dim), dtype=np.float32)
    for s in range(0, len(uris), chunk):
        images = load_images(uris[s : s + chunk])
        out[s : s + chunk] = model.embed(
            images if turn is None else [turn(x) for x in images], dev, device.batch_size, dtype, progress
        )
    return out


def _embedding_metadata(
    model, fingerprint: str, device: DeviceResource, reused: int, embedded: int, progress: Progress
) -> dict:
    return dict(
        backbone=model.name,
        embedder_fingerprint=fingerprint,
        dim=model.dim,
        image_size=model.image_size,
        weights_file=model.weights_file or "none (no learned weights)",
        weights_sha256=model.weights_sha256 or "none",
        reused=reused,
        embedded=embedded,
        images_per_second=round(embedded / max(progress.seconds, 1e-9), 1),
        seconds=round(progress.seconds, 3),
        **{f"device/{k}": str(v) for k, v in device.describe().items()},
    )


def embed_manifest(
    context,
    manifest: pl.DataFrame,
    previous: pl.DataFrame | None,
    embedder: EmbedderResource,
    device: DeviceResource,
    trained: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """id, content_hash, embedder (fingerprint), embedding, batch for every row of a batch's manifest.

    Rows of `previous` with the same id, content hash and embedder fingerprint are kept as they are;
    a new backbone, weights file, input size or dtype changes the fingerprint and re-embeds everything.
    """
    model, _, dtype, fingerprint = _loaded(embedder, device, trained)
    reused = reusable_embeddings(previous, manifest, fingerprint)
    todo = still_to_embed(manifest, reused)
    progress = Progress(context.log, f"embedding with {model.name}", todo.height)
    emb = _embed_files(model, todo["uri"].to_list(), device, dtype, progress)
    fresh = embedding_frame(todo.select("id", "content_hash").with_columns(embedder=pl.lit(fingerprint)), emb)
    if "batch" in todo.columns:
        fresh = fresh.with_columns(batch=todo["batch"])
    df = in_manifest_order(manifest, reused, fresh)
    context.log.info(f"{df.height} embeddings: {reused.height} reused, {todo.height} computed")
    # What determines the vectors, not the vectors: computed once here and stored with the rows.
    return versioned(
        df,
        embeddings_version(df),
        **_embedding_metadata(model, fingerprint, device, reused.height, todo.height, progress),
    )


def mirrored_embeddings(
    generated_images: pl.DataFrame,
    generated_embeddings: pl.DataFrame,
    embedder: EmbedderResource,
    device: DeviceResource,
    gmv_home: GmvHome,
    log,
) -> np.ndarray:
    """The vectors of a batch's mirror images (left-right), by the embedder that gave the batch's own vectors (the
    stored one, checked by its fingerprint), in the order of `generated_embeddings`: for matching through a flip."""
    model, dtype = embedder.load_stored(gmv_home), device.torch_dtype()
    model.to(device.torch_device(), dtype)
    fingerprint, used = model.fingerprint(dtype), set(generated_embeddings["embedder"].unique().to_list())
    if used - {fingerprint}:
        raise ValueError(
            f"generated_embeddings were made by {sorted(used)}, not by the current embedder ({fingerprint}): "
            "materialise generated_embeddings of this batch before its matches"
        )
    uris = dict(zip(generated_images["id"], generated_images["uri"]))
    order = [uris[i] for i in generated_embeddings["id"]]
    progress = Progress(log, f"embedding mirror images with {model.name}", len(order))
    return _embed_files(model, order, device, dtype, progress, turn=mirror)


def embed_training_vectors(
    context,
    manifest: pl.DataFrame,
    embedder: EmbedderResource,
    device: DeviceResource,
    trained: pl.DataFrame,
    gmv_home: GmvHome,
    shard: str | None,
) -> dg.Output[pl.DataFrame]:
    """The vectors of every training image of `manifest` (one shard's, or all) into the vector store, a chunk at a
    time; the table: id, content_hash, embedder (fingerprint), vector_row [, shard].

    A vector is reused (read from the file of a stored shard, any shard) where an image's id, content hash and
    embedder fingerprint are unchanged; where the whole table's version is unchanged its file is kept as it is.
    """
    model, dev, dtype, fingerprint = _loaded(embedder, device, trained)
    df = manifest.select("id", "content_hash").with_columns(
        embedder=pl.lit(fingerprint), vector_row=pl.int_range(manifest.height, dtype=pl.Int64)
    )
    version, store = embeddings_version(df), gmv_home.vector_store
    path = store.file(shard, version)
    complete = store.complete(path, df.height, model.dim)  # this version's file exists: nothing to write
    if complete:
        os.utime(path)  # now in use again: another shard's cleanup keeps files newer than the stored ones
    sources = [] if complete else store.previous(fingerprint, context.log.warning)
    plan = reuse_plan(df, sources)
    todo = np.empty(0, dtype=np.int64) if complete else np.flatnonzero(plan["source"].to_numpy() < 0)
    progress = Progress(context.log, f"embedding with {model.name}", len(todo))
    if not complete:
        uris = manifest["uri"].to_list()

        def fill(start: int, stop: int) -> np.ndarray:
            out = np.empty((stop - start, model.dim), dtype=np.float32)
            part = plan.slice(start, stop - start)
            fresh = np.flatnonzero(part["source"].to_numpy() < 0)
            if len(fresh):
                out[fresh] = model.embed(
                    load_images([uris[start + i] for i in fresh]), dev, device.batch_size, dtype, progress
                )
            for (source,), group in part.with_row_index("_at").filter(pl.col("source") >= 0).group_by("source"):
                out[group["_at"].to_numpy()] = sources[source][1][group["row"].to_numpy()]
            return out

        write_vectors(path, df.height, model.dim, fill, _chunk(device))
    # Files out of date for their own shard (older than its stored file), or of another layout's shard and older than
    # every stored file, go; the stored ones, this layout's not yet stored (this run's, a concurrent shard's) and any
    # newer one stay (the table may still name the stored one if this run's write fails).
    live = {
        store.name(key): store.file(key, version)
        for key, version in gmv_home.content_versions("train_embeddings").items()
    }
    layout = [store.name(k) for k in ([None] if shard is None else sibling_keys(shard))]
    remove_superseded(store.folder, store.name(None), live, layout)
    reused = df.height - len(todo)
    context.log.info(f"{df.height} training vectors in {path.name}: {reused} reused, {len(todo)} computed")
    if shard is not None:
        df = df.with_columns(shard=pl.lit(shard))
    return versioned(
        df,
        version,
        vectors_file=str(path),
        vectors_bytes=path.stat().st_size,
        **_embedding_metadata(model, fingerprint, device, reused, len(todo), progress),
    )


class SimilarityConfig(dg.Config):
    image_size: int = Field(default=_SIM.image_size, ge=8, description="input size in px the similarity is trained at")
    dim: int = Field(default=_SIM.dim, ge=2, le=256, description="embedding dimension")
    steps: int = Field(default=_SIM.steps, ge=0, description="optimiser steps (a fixed amount of work: deterministic)")
    max_train_images: int = Field(default=_SIM.max_train_images, ge=2, description="seeded sample trained on")
    seed: int = Field(default=_SIM.seed, description="seed of the sample, the initial weights and the augmentations")

    def params(self) -> SimilarityParams:
        return replace(
            _SIM,
            image_size=self.image_size,
            dim=self.dim,
            steps=self.steps,
            max_train_images=self.max_train_images,
            seed=self.seed,
        )


SIMILARITY_SCHEMA = {
    "weights_file": pl.String,
    "weights_sha256": pl.String,
    "state_sha256": pl.String,
    "training_key": pl.String,
    "channels": pl.Int64,
    "dim": pl.Int64,
    "image_size": pl.Int64,
    "train_images": pl.Int64,
    "reused": pl.Boolean,
}


@dg.asset(
    group_name="embeddings",
    code_version="1",
    op_tags=GPU_TAGS,
    automation_condition=FOLLOWS_INPUTS,
    kinds={"duckdb", "polars", "pytorch"},
)
def similarity_model(
    context,
    config: SimilarityConfig,
    training_images: pl.DataFrame,
    embedder: EmbedderResource,
    embedding_device: DeviceResource,
    gmv_home: GmvHome,
) -> dg.Output[pl.DataFrame]:
    """The similarity learned from the training images (contrastive, method/similarity.py), when the embedder's
    backbone is `similarity`; no row for any other backbone. Its weights are saved under GMV_HOME/similarity, named
    by what decides them (training images in order, their content hashes, the config): while those are unchanged
    the file is reused, not trained again; a change trains a new one (and, through automation, re-embeds)."""
    if not embedder.learned:
        context.log.info(f"backbone {embedder.backbone} is not learned: no similarity to train")
        return versioned(pl.DataFrame(schema=SIMILARITY_SCHEMA), backbone=embedder.backbone)
    params = config.params()
    key = hashlib.sha256(
        json.dumps(
            [
                SIMILARITY_FORMAT,
                params.to_dict(),
                training_images["id"].to_list(),
                training_images["content_hash"].to_list(),
            ]
        ).encode()
    ).hexdigest()
    path = gmv_home.subdir("similarity") / f"similarity-{key[:16]}.pt"
    reused = path.is_file()
    device = embedding_device.torch_device()
    if reused:
        model = load_similarity(path)
        context.log.info(f"similarity for these training images and config exists: reusing {path}")
    else:
        progress = Progress(
            context.log, f"training the similarity ({params.dim}-d, {params.image_size} px)", params.steps
        )
        model = train_similarity(
            ImageSequence(training_images["uri"].to_list()),
            params,
            device,
            lambda step, steps: progress(step - progress.done, steps),
        )
        write_atomically(path, model.save)
        context.log.info(f"similarity trained on {model.info['train_images']} images in {model.info['seconds']} s")
    row = {
        "weights_file": str(path),
        "weights_sha256": sha256_file(path),
        "state_sha256": model.sha256,
        "training_key": key,
        "channels": model.channels,
        "dim": model.dim,
        "image_size": model.image_size,
        "train_images": int(model.info.get("train_images", 0)),
        "reused": reused,
    }
    info = {k: v for k, v in model.info.items() if isinstance(v, (int, float, str, bool))}
    # The data version is the weights' hash: downstream re-embeds only when the weights change.
    return versioned(
        pl.DataFrame([row], schema=SIMILARITY_SCHEMA),
        version=model.sha256[:24],
        **row,
        **{f"training/{k}": v for k, v in info.items()},
        device=str(device),
        seconds=float(info.get("seconds", 0.0)) if not reused else 0.0,
        **config_metadata(config),
    )


@dg.asset(group_name="embeddings", code_version="2", kinds={"pytorch"})
def embedding_model(
    embedder: EmbedderResource, embedding_device: DeviceResource, similarity_model: pl.DataFrame
) -> dg.MaterializeResult:
    """The feature extractor f as data: its fingerprint (backbone, weights sha256, input size, precision) is the
    data version, so a new backbone or weights file re-embeds every training image and every batch."""
    model = embedder.load(similarity_model)
    fingerprint = model.fingerprint(embedding_device.torch_dtype())
    version = hashlib.sha256(fingerprint.encode()).hexdigest()[:24]
    return dg.MaterializeResult(
        metadata={
            "backbone": model.name,
            "embedder_fingerprint": fingerprint,
            "dim": model.dim,
            "image_size": model.image_size,
            "weights_file": model.weights_file or "none (no learned weights)",
            "weights_sha256": model.weights_sha256 or "none",
            "content_version": version,
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(
    group_name="embeddings",
    code_version="5",
    op_tags=GPU_TAGS,
    automation_condition=FOLLOWS_INPUTS,
    deps=[embedding_model],
    kinds={"duckdb", "polars", "pytorch", "numpy"},
)
def train_embeddings(
    context,
    training_images: pl.DataFrame,
    similarity_model: pl.DataFrame,
    embedder: EmbedderResource,
    embedding_device: DeviceResource,
    gmv_home: GmvHome,
) -> dg.Output[pl.DataFrame]:
    """L2-normalised feature vector of every training image (of one shard, where GMV_TRAIN_SHARDS > 1); new images
    are embedded, the rest reused. The vectors go to GMV_HOME/vectors (memory-mapped by their readers), the table
    holds the rows and their version (docs/DESIGN.md "Storage at scale")."""
    # Reuse draws on every shard's stored vectors: a changed shard count moves images between shards, not re-embeds
    # them.
    key = own_partition(context)
    manifest = training_images if key is None else training_images[shard_slice(training_images.height, key)]
    return embed_training_vectors(context, manifest, embedder, embedding_device, similarity_model, gmv_home, key)


@dg.asset(
    group_name="embeddings",
    code_version="3",
    op_tags=GPU_TAGS,
    partitions_def=generated_batches,
    metadata=BATCH_TABLE,
    automation_condition=FOLLOWS_INPUTS,
    deps=[embedding_model],
    kinds={"duckdb", "polars", "pytorch"},
)
def generated_embeddings(
    context,
    generated_images: pl.DataFrame,
    similarity_model: pl.DataFrame,
    embedder: EmbedderResource,
    embedding_device: DeviceResource,
    gmv_home: GmvHome,
) -> dg.Output[pl.DataFrame]:
    """L2-normalised feature vector of every generated image of one batch."""
    previous = gmv_home.stored_rows("generated_embeddings", batch=context.partition_key)
    return embed_manifest(context, generated_images, previous, embedder, embedding_device, similarity_model)
