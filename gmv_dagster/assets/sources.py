"""Manifests of the training and generated images, and the demo generator."""


import hashlib

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ..resources import DeviceResource, GmvHome, ImageSources
from ..valuation.demo_generator import TrainParams, load_checkpoint, sample_cvae, save_checkpoint, train_cvae
from ..valuation.images import fashion_mnist_manifest, load_images, locate_fashion_mnist, manifest_from_path
from .metadata import GPU_TAGS, table_metadata

DEMO_SAMPLES = "demo_cvae.npz"


class TrainingImagesConfig(dg.Config):
    demo_size: int = Field(default=20000, gt=0, description="Fashion-MNIST training images in the demo subset")
    seed: int = Field(default=0, description="seed of the demo subset")


@dg.asset(group_name="sources", code_version="1")
def training_images(context, config: TrainingImagesConfig, image_sources: ImageSources, gmv_home: GmvHome) -> pl.DataFrame:
    """One row per training image: stable id, uri, content hash, class label, attributes."""
    if image_sources.train_is_demo:
        directory = locate_fashion_mnist(image_sources.fashion_mnist_dir, gmv_home.subdir("datasets"))
        df = fashion_mnist_manifest(directory, "train", config.demo_size, config.seed)
    else:
        df = manifest_from_path(image_sources.train)
    _require_unique(df, image_sources.train)
    context.add_output_metadata(table_metadata(df, source=image_sources.train, n_labels=df["label"].n_unique()))
    return df


class DemoGeneratorConfig(dg.Config):
    epochs: int = Field(default=15, gt=0)
    latent: int = Field(default=16, gt=0)
    n_samples: int = Field(default=1000, gt=0, description="generated images to sample")
    seed: int = Field(default=0, description="seed of training and of the sampling noise")


@dg.asset(group_name="sources", code_version="1", op_tags=GPU_TAGS)
def demo_generator(
    context, config: DemoGeneratorConfig, training_images: pl.DataFrame, image_sources: ImageSources,
    gmv_home: GmvHome, generator_device: DeviceResource,
) -> dg.MaterializeResult:
    """The demo's class-conditional VAE, trained on the training images and sampled to a .npz."""
    if not image_sources.generated_is_demo:
        return dg.MaterializeResult(metadata={"skipped": f"generated images come from {image_sources.generated}"})
    device = generator_device.torch_device()
    params = TrainParams(epochs=config.epochs, latent=config.latent, seed=config.seed)
    checkpoint = gmv_home.subdir("checkpoints") / f"cvae-{_content_key(training_images)}-{params_key(params)}.pt"
    if checkpoint.is_file():
        model, classes = load_checkpoint(checkpoint)
        context.log.info(f"reusing checkpoint {checkpoint} (same training images and parameters)")
    else:
        images = load_images(training_images["uri"].to_list())
        log = lambda e, loss, s: context.log.info(f"epoch {e}/{params.epochs}: loss {loss:.1f} ({s:.1f} s)")  # noqa: E731
        model, classes = train_cvae(images, training_images["label"].to_list(), params, device, log)
        save_checkpoint(model.cpu(), classes, checkpoint)
    samples, labels = sample_cvae(model.to(device), classes, config.n_samples, config.seed, device)
    out = gmv_home.subdir("generated") / DEMO_SAMPLES
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, images=samples, labels=np.asarray(labels))
    tmp.replace(out)
    return dg.MaterializeResult(
        metadata={"checkpoint": str(checkpoint), "samples": str(out), "n_samples": len(samples), "classes": len(classes)}
    )


@dg.asset(group_name="sources", code_version="1", deps=[demo_generator])
def generated_images(context, image_sources: ImageSources, gmv_home: GmvHome) -> pl.DataFrame:
    """One row per generated image: stable id, uri, content hash, label (demo: the conditioning class), batch."""
    source = str(gmv_home.root() / "generated" / DEMO_SAMPLES) if image_sources.generated_is_demo else image_sources.generated
    df = manifest_from_path(source).with_columns(batch=pl.lit("default"))
    _require_unique(df, source)
    context.add_output_metadata(table_metadata(df, source=source))
    return df


def _require_unique(df: pl.DataFrame, source: str) -> None:
    dup = df.filter(pl.col("id").is_duplicated())
    if dup.height:
        raise ValueError(f"{source}: duplicate image id {dup['id'][0]!r}; ids must be unique")


def _content_key(manifest: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for value in manifest.select("content_hash", "label").iter_rows():
        h.update(repr(value).encode())
    return h.hexdigest()[:16]


def params_key(params) -> str:
    return hashlib.sha256(repr(params).encode()).hexdigest()[:8]
