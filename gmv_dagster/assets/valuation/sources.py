"""Manifests of the training images and of each batch of generated images, and the demo generator."""

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from ...common.files import write_atomically
from ...demo.diffusion import DiffusionParams
from ...demo.generator import GeneratorSpec, TrainParams, cached_generator, data_key
from ...pipeline.versions import manifest_version
from ...resources import DeviceResource, GmvHome, ImageSources
from ...sources.batches import batch_manifest, inbox_batch_path
from ...sources.fashion_mnist import fashion_mnist_manifest, locate_fashion_mnist
from ...sources.images import array_hash, load_images
from ...sources.manifests import Scan, manifest_from_path
from ..automation import (
    BATCH_TABLE,
    FOLLOWS_INPUTS,
    REFRESHES_WITH_INPUTS,
    generated_batches,
)
from ..metadata import config_metadata, latest_metadata, versioned
from ..steps import GPU_TAGS, Progress

DEMO_SAMPLES = "demo_{family}.npz"


class TrainingImagesConfig(dg.Config):
    demo_size: int = Field(default=20000, gt=0, description="Fashion-MNIST training images in the demo subset")
    seed: int = Field(default=0, description="seed of the demo subset")


@dg.asset(group_name="sources", code_version="1", kinds={"duckdb", "polars"})
def training_images(
    context, config: TrainingImagesConfig, image_sources: ImageSources, gmv_home: GmvHome
) -> dg.Output[pl.DataFrame]:
    """One row per training image: stable id, uri, content hash, class label, attributes (bad images: see
    ImageSources.on_bad_image)."""
    if image_sources.train_is_demo:
        directory = locate_fashion_mnist(image_sources.fashion_mnist_dir, gmv_home.subdir("datasets"))
        scan = Scan(fashion_mnist_manifest(directory, "train", config.demo_size, config.seed))
    else:
        scan = manifest_from_path(
            image_sources.train,
            image_sources.on_bad_image,
            known_good=_stored_hashes(gmv_home, "training_images"),
            progress=Progress(context.log, "checking training images", 0),
        )
    return manifest_output(
        context, scan, image_sources.train, n_labels=scan.manifest["label"].n_unique(), **config_metadata(config)
    )


class DemoGeneratorConfig(dg.Config):
    family: str = Field(
        default="vae", description="vae (class-conditional VAE) | diffusion (class-conditional DDPM, DDIM sampling)"
    )
    epochs: int = Field(default=15, gt=0, description="VAE epochs")
    latent: int = Field(default=16, gt=0, description="VAE latent dimension")
    prior_components: int = Field(
        default=TrainParams.prior_components,
        ge=0,
        description=(
            "VAE sampling prior: Gaussian components per class fitted to the training images' latent means (0: N(0, I))"
        ),
    )
    diffusion_steps: int = Field(default=2000, gt=0, description="DDPM optimiser steps (batches of 64)")
    diffusion_channels: int = Field(default=16, gt=0, description="DDPM U-Net width")
    sample_steps: int = Field(default=25, gt=0, description="DDIM sampling steps")
    n_samples: int = Field(default=1000, gt=0, description="generated images to sample")
    seed: int = Field(default=0, description="seed of training and of the sampling noise")

    def spec(self) -> GeneratorSpec:
        return GeneratorSpec(
            self.family,
            TrainParams(epochs=self.epochs, latent=self.latent, seed=self.seed, prior_components=self.prior_components),
            DiffusionParams(
                steps=self.diffusion_steps,
                channels=self.diffusion_channels,
                sample_steps=self.sample_steps,
                seed=self.seed,
            ),
        )


def train_demo_generator(
    log,
    spec: GeneratorSpec,
    images: list,
    hashes: list[str],
    labels: list[str],
    gmv_home: GmvHome,
    device: DeviceResource,
):
    """The demo generator trained on these images (its checkpoint reused when data and spec are unchanged)."""
    return cached_generator(
        spec, images, labels, data_key(hashes, labels), gmv_home.subdir("checkpoints"), device.torch_device(), log
    )


@dg.asset(
    group_name="sources",
    code_version="3",
    op_tags=GPU_TAGS,
    automation_condition=FOLLOWS_INPUTS,
    kinds={"pytorch", "numpy"},
)
def demo_generator(
    context,
    config: DemoGeneratorConfig,
    training_images: pl.DataFrame,
    image_sources: ImageSources,
    gmv_home: GmvHome,
    generator_device: DeviceResource,
) -> dg.MaterializeResult:
    """The demo's class-conditional generator (VAE or diffusion), trained on the training images and sampled to a \
.npz."""
    if not image_sources.generated_is_demo:
        return dg.MaterializeResult(
            metadata={"skipped": f"generated images come from {image_sources.generated}"},
            data_version=dg.DataVersion("skipped"),
        )
    spec = config.spec()
    generator, checkpoint = train_demo_generator(
        context.log.info,
        spec,
        load_images(training_images["uri"].to_list()),
        training_images["content_hash"].to_list(),
        training_images["label"].to_list(),
        gmv_home,
        generator_device,
    )
    samples, labels = generator.sample(config.n_samples, config.seed, generator_device.torch_device())
    out = gmv_home.subdir("generated") / DEMO_SAMPLES.format(family=spec.family)
    write_atomically(out, lambda tmp: np.savez_compressed(tmp, images=samples, labels=np.asarray(labels)))
    version = array_hash(samples)[:24]
    return dg.MaterializeResult(
        metadata={
            "family": spec.family,
            "generator_spec": dg.MetadataValue.json(spec.to_dict()),
            **config_metadata(config),
            "checkpoint": str(checkpoint),
            "samples": str(out),
            "samples_version": version,
            "n_samples": len(samples),
            "classes": len(generator.classes),
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(
    group_name="sources",
    code_version="2",
    deps=[demo_generator],
    partitions_def=generated_batches,
    metadata=BATCH_TABLE,
    automation_condition=REFRESHES_WITH_INPUTS,
    kinds={"duckdb", "polars"},
)
def generated_images(context, image_sources: ImageSources, gmv_home: GmvHome) -> dg.Output[pl.DataFrame]:
    """One batch of generated images: id (`<batch>/<name>`), uri, content hash, label (demo: the class), batch.

    The configured source is the batch `demo` (or its folder's name); other batches are inbox folders.
    """
    key = context.partition_key
    if key == image_sources.source_batch:
        source = (
            str(demo_samples_path(context, gmv_home)) if image_sources.generated_is_demo else image_sources.generated
        )
    else:
        source = str(inbox_batch_path(image_sources.inbox_path(), key))
    scan = batch_manifest(
        key,
        source,
        image_sources.on_bad_image,
        known_good=_stored_hashes(gmv_home, "generated_images", key),
        progress=Progress(context.log, f"checking the images of batch {key}", 0),
    )
    return manifest_output(context, scan, source)


def _stored_hashes(gmv_home: GmvHome, table: str, batch: str | None = None) -> frozenset[str]:
    """Content hashes of the images the stored manifest holds: each was decoded and found good when it was made."""
    stored = gmv_home.stored_rows(table, batch)
    return frozenset() if stored is None or "content_hash" not in stored.columns else frozenset(stored["content_hash"])


def manifest_output(context, scan: Scan, source: str, **metadata) -> dg.Output[pl.DataFrame]:
    """The manifest with its version; images left out are counted, listed (up to 1,000) and logged."""
    df = scan.manifest
    dup = df.filter(pl.col("id").is_duplicated())
    if dup.height:
        raise ValueError(f"{source}: duplicate image id {dup['id'][0]!r}; ids must be unique")
    # Identical files under two names are two training images that split their credit; worth knowing.
    duplicates = df.height - df["content_hash"].n_unique()
    if scan.skipped.height:
        context.log.warning(
            f"{source}: {scan.skipped.height} file(s) left out, e.g. {scan.skipped['path'][0]}: "
            f"{scan.skipped['reason'][0]}"
        )
    skipped = dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in scan.skipped.head(1000).iter_rows(named=True)],
        schema=dg.TableSchema(columns=[dg.TableColumn("path", "string"), dg.TableColumn("reason", "string")]),
    )
    return versioned(
        df,
        manifest_version(df),
        source=source,
        skipped_count=scan.skipped.height,
        skipped=skipped,
        duplicate_files=duplicates,
        decoded=df.height - scan.known,
        known_unchanged=scan.known,
        **metadata,
    )


def demo_samples_path(context, gmv_home: GmvHome):
    """The .npz that the latest demo_generator materialisation wrote (its family is in its metadata)."""
    family = latest_metadata(context, "demo_generator").get("family", "vae")
    return gmv_home.root() / "generated" / DEMO_SAMPLES.format(family=family)
