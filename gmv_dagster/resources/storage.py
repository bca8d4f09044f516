"""Where things live (GMV_HOME) and where the images come from; the resource set builder."""

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from ..method.embedders import DEFAULT_BACKBONE
from ..pipeline.database import DATABASE, DEFAULT_HOME, home_folder
from ..pipeline.vectors import VectorStore
from ..sources.batches import DEMO, configured_batch_key, inbox_folder
from ..sources.manifests import ON_BAD_IMAGE, check_policy
from .device import DeviceResource
from .embedder import EmbedderResource
from .method import MethodResource
from .quality import QualityScorerResource
from .reports import ReportSettings
from .warehouse import (
    GmvDuckDBIOManager,
    read_content_version,
    read_content_versions,
    read_stored_rows,
)


class GmvHome(dg.ConfigurableResource):
    """The project's folder: the DuckDB file, usearch indexes, checkpoints, generated images."""

    path: str = Field(description="GMV_HOME; default ./gmv_home")

    def root(self) -> Path:
        root = Path(self.path).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return root

    def subdir(self, name: str) -> Path:
        path = self.root() / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def database(self) -> Path:
        return self.root() / DATABASE

    def stored_rows(self, table: str, batch: str | None = None) -> pl.DataFrame | None:
        """What a table asset holds now (one batch of it), for incremental work; None before its first run."""
        return read_stored_rows(self.database, table, batch)

    def content_version(self, table: str, partition: str | None = None) -> str | None:
        """The content version stored with a table asset's latest write (of one partition); None before it."""
        return read_content_version(self.database, table, partition)

    @property
    def vector_store(self) -> VectorStore:
        """The training vectors' files under GMV_HOME/vectors, read through the versions stored with their tables."""
        return VectorStore(self.subdir("vectors"), self.content_version, self.stored_rows)

    def content_versions(self, table: str) -> dict[str | None, str]:
        """{partition (None: unpartitioned): content version} of every stored write of a table asset."""
        return {key or None: version for key, version in read_content_versions(self.database, table).items()}


class ImageSources(dg.ConfigurableResource):
    """A folder of images or a .npz for each side; `demo` is Fashion-MNIST and the demo generator.

    Generated images come in batches: the configured source is the first (key `demo`, or its folder or
    file name), and every complete folder in the inbox is one more (see sources/batches.py).
    """

    train: str = Field(default=DEMO, description="GMV_TRAIN_SOURCE: demo, a folder of images or a .npz")
    generated: str = Field(default=DEMO, description="GMV_GENERATED_SOURCE: demo, a folder of images or a .npz")
    inbox: str = Field(default=f"{DEFAULT_HOME}/inbox", description="GMV_INBOX: folder where new batches arrive")
    fashion_mnist_dir: str | None = Field(default=None, description="GMV_FASHION_MNIST_DIR")
    on_bad_image: str = Field(
        default=ON_BAD_IMAGE,
        description="GMV_ON_BAD_IMAGE: fail (refuse the source, naming the "
        "first bad file) | skip (value the rest, list the bad ones in the manifest's metadata)",
    )

    @property
    def source_batch(self) -> str:
        """The batch key of the configured generated source."""
        return configured_batch_key(self.generated)

    def inbox_path(self) -> Path:
        return Path(self.inbox).expanduser().resolve()

    @property
    def train_is_demo(self) -> bool:
        return self.train == DEMO

    @property
    def generated_is_demo(self) -> bool:
        return self.generated == DEMO


def build_resources(home: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides) -> dict:
    """The resource set for one environment; environments differ only in these arguments.

    Read when Definitions are built (a code location load or a test), never at import.
    """
    env = os.environ if env is None else env
    policy = env.get("GMV_ON_BAD_IMAGE", ON_BAD_IMAGE)
    check_policy(policy)  # a wrong value stops the code location loading, with the fix
    home = home_folder(home, env)
    home.mkdir(parents=True, exist_ok=True)  # DuckDB creates the file, not its folder
    gmv_home = GmvHome(path=str(home))
    resources = {
        "io_manager": GmvDuckDBIOManager(database=str(gmv_home.database), schema="main"),
        "gmv_home": gmv_home,
        "image_sources": ImageSources(
            train=env.get("GMV_TRAIN_SOURCE", DEMO),
            generated=env.get("GMV_GENERATED_SOURCE", DEMO),
            inbox=str(inbox_folder(home, env)),
            fashion_mnist_dir=env.get("GMV_FASHION_MNIST_DIR") or None,
            on_bad_image=policy,
        ),
        "embedder": EmbedderResource(backbone=env.get("GMV_BACKBONE", DEFAULT_BACKBONE)),
        "quality_scorer": QualityScorerResource(),
        "method": MethodResource(),
        "report_settings": ReportSettings(),
        # One device resource per torch-running asset group, each overridable in run config.
        "embedding_device": DeviceResource(device=env.get("GMV_EMBEDDING_DEVICE", "auto")),
        "matching_device": DeviceResource(device=env.get("GMV_MATCHING_DEVICE", "auto")),
        "quality_device": DeviceResource(device=env.get("GMV_QUALITY_DEVICE", "auto")),
        "generator_device": DeviceResource(device=env.get("GMV_GENERATOR_DEVICE", "auto")),
    }
    resources.update(overrides)
    return resources
