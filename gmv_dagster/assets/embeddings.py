"""f(x) for every training and generated image, on the injected device."""


import dagster as dg
import numpy as np
import polars as pl

from ..resources import DeviceResource, EmbedderResource
from ..valuation.images import load_images
from .metadata import GPU_TAGS, Progress, embedding_frame, table_metadata


def embed_manifest(context, manifest: pl.DataFrame, embedder: EmbedderResource, device: DeviceResource) -> pl.DataFrame:
    model = embedder.load()
    dev, dtype = device.torch_device(), device.torch_dtype()
    model.to(dev, dtype)
    progress = Progress(context.log, f"embedding with {model.name}", manifest.height)
    uris = manifest["uri"].to_list()
    # Load and embed in chunks so that memory stays bounded by the chunk, not the data set.
    chunk = max(device.batch_size * 16, 4096)
    parts = [
        model.embed(load_images(uris[s : s + chunk]), dev, device.batch_size, dtype, progress)
        for s in range(0, len(uris), chunk)
    ]
    emb = np.concatenate(parts) if parts else np.empty((0, model.dim), dtype=np.float32)
    df = embedding_frame(manifest["id"], emb)
    context.add_output_metadata(
        table_metadata(
            df,
            backbone=model.name,
            dim=model.dim,
            image_size=model.image_size,
            weights_file=model.weights_file or "none (no learned weights)",
            weights_sha256=model.weights_sha256 or "none",
            images_per_second=round(manifest.height / max(progress.seconds, 1e-9), 1),
            seconds=round(progress.seconds, 3),
            **{f"device/{k}": str(v) for k, v in device.describe().items()},
        )
    )
    return df


@dg.asset(group_name="embeddings", code_version="1", op_tags=GPU_TAGS)
def train_embeddings(
    context, training_images: pl.DataFrame, embedder: EmbedderResource, embedding_device: DeviceResource
) -> pl.DataFrame:
    """L2-normalised feature vector of every training image (id, embedding)."""
    return embed_manifest(context, training_images, embedder, embedding_device)


@dg.asset(group_name="embeddings", code_version="1", op_tags=GPU_TAGS)
def generated_embeddings(
    context, generated_images: pl.DataFrame, embedder: EmbedderResource, embedding_device: DeviceResource
) -> pl.DataFrame:
    """L2-normalised feature vector of every generated image (id, embedding)."""
    return embed_manifest(context, generated_images, embedder, embedding_device)
