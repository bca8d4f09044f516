"""f(x) for every training and generated image, on the injected device; unchanged images are not embedded again."""


import hashlib

import dagster as dg
import numpy as np
import polars as pl

from ...pipeline.reuse import in_manifest_order, reusable_embeddings, still_to_embed
from ...pipeline.shards import shard_slice
from ...resources import DeviceResource, EmbedderResource, GmvHome
from ...sources.images import load_images
from ..automation import BATCH_TABLE, FOLLOWS_INPUTS, generated_batches
from ..metadata import GPU_TAGS, Progress, embedding_frame, own_partition, versioned


def embed_manifest(context, manifest: pl.DataFrame, previous: pl.DataFrame | None, embedder: EmbedderResource,
                   device: DeviceResource, **partition: str) -> dg.Output[pl.DataFrame]:
    """id, content_hash, embedder (fingerprint), embedding [, batch] [, partition columns] for every manifest row.

    Rows of `previous` with the same id, content hash and embedder fingerprint are kept as they are;
    a new backbone, weights file, input size or dtype changes the fingerprint and re-embeds everything.
    """
    model = embedder.load()
    dev, dtype = device.torch_device(), device.torch_dtype()
    model.to(dev, dtype)
    fingerprint = model.fingerprint(dtype)
    keys = ["id", "content_hash"] + (["batch"] if "batch" in manifest.columns else [])
    reused = reusable_embeddings(previous, manifest, fingerprint)
    todo = still_to_embed(manifest, reused)
    progress = Progress(context.log, f"embedding with {model.name}", todo.height)
    uris = todo["uri"].to_list()
    # Load and embed in chunks so that memory stays bounded by the chunk, not the data set.
    chunk = max(device.batch_size * 16, 4096)
    parts = [
        model.embed(load_images(uris[s : s + chunk]), dev, device.batch_size, dtype, progress)
        for s in range(0, len(uris), chunk)
    ]
    emb = np.concatenate(parts) if parts else np.empty((0, model.dim), dtype=np.float32)
    fresh = embedding_frame(todo.select("id", "content_hash").with_columns(embedder=pl.lit(fingerprint)), emb)
    if "batch" in keys:
        fresh = fresh.with_columns(batch=todo["batch"])
    df = in_manifest_order(manifest, reused, fresh).with_columns(**{k: pl.lit(v) for k, v in partition.items()})
    context.log.info(f"{df.height} embeddings: {reused.height} reused, {todo.height} computed")
    return versioned(
        df,
        backbone=model.name, embedder_fingerprint=fingerprint, dim=model.dim, image_size=model.image_size,
        weights_file=model.weights_file or "none (no learned weights)", weights_sha256=model.weights_sha256 or "none",
        reused=reused.height, embedded=todo.height,
        images_per_second=round(todo.height / max(progress.seconds, 1e-9), 1), seconds=round(progress.seconds, 3),
        **{f"device/{k}": str(v) for k, v in device.describe().items()},
    )


@dg.asset(group_name="embeddings", code_version="1")
def embedding_model(embedder: EmbedderResource, embedding_device: DeviceResource) -> dg.MaterializeResult:
    """The feature extractor f as data: its fingerprint (backbone, weights sha256, input size, precision) is the
    data version, so a new backbone or weights file re-embeds every training image and every batch."""
    model = embedder.load()
    fingerprint = model.fingerprint(embedding_device.torch_dtype())
    version = hashlib.sha256(fingerprint.encode()).hexdigest()[:24]
    return dg.MaterializeResult(
        metadata={"backbone": model.name, "embedder_fingerprint": fingerprint, "dim": model.dim,
                  "image_size": model.image_size, "weights_file": model.weights_file or "none (no learned weights)",
                  "weights_sha256": model.weights_sha256 or "none", "content_version": version},
        data_version=dg.DataVersion(version),
    )


@dg.asset(group_name="embeddings", code_version="2", op_tags=GPU_TAGS, automation_condition=FOLLOWS_INPUTS,
          deps=[embedding_model])
def train_embeddings(
    context, training_images: pl.DataFrame, embedder: EmbedderResource, embedding_device: DeviceResource, gmv_home: GmvHome
) -> dg.Output[pl.DataFrame]:
    """L2-normalised feature vector of every training image (of one shard, where GMV_TRAIN_SHARDS > 1); new images
    are embedded, the rest reused."""
    # Reuse draws on every shard's stored rows: a changed shard count moves images between shards, not re-embeds them.
    previous = gmv_home.stored_rows("train_embeddings")
    key = own_partition(context)
    if key is None:
        return embed_manifest(context, training_images, previous, embedder, embedding_device)
    shard = training_images[shard_slice(training_images.height, key)]
    return embed_manifest(context, shard, previous, embedder, embedding_device, shard=key)


@dg.asset(group_name="embeddings", code_version="2", op_tags=GPU_TAGS, partitions_def=generated_batches,
          metadata=BATCH_TABLE, automation_condition=FOLLOWS_INPUTS, deps=[embedding_model])
def generated_embeddings(
    context, generated_images: pl.DataFrame, embedder: EmbedderResource, embedding_device: DeviceResource, gmv_home: GmvHome
) -> dg.Output[pl.DataFrame]:
    """L2-normalised feature vector of every generated image of one batch."""
    previous = gmv_home.stored_rows("generated_embeddings", batch=context.partition_key)
    return embed_manifest(context, generated_images, previous, embedder, embedding_device)
