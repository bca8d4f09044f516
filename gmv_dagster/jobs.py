"""Jobs: the whole valuation, one batch, the training side (per shard), and the criteria reports."""

import dagster as dg

from .assets.automation import PER_BATCH_ASSETS, TRAIN_SHARDED
from .assets.valuation import embeddings, sources

REPORTS = dg.AssetSelection.groups("reports")
PER_BATCH = dg.AssetSelection.assets(*PER_BATCH_ASSETS)
TRAIN_SIDE = dg.AssetSelection.assets(*TRAIN_SHARDED)


def build_jobs(sharded: bool) -> list:
    """The jobs; with training shards, the training side is its own job (`train_shard`, one run per shard),
    because one run covers one partition of one partitions definition."""
    training = TRAIN_SIDE if sharded else dg.AssetSelection.assets()
    jobs = [
        dg.define_asset_job(
            "valuation",
            selection=dg.AssetSelection.all() - REPORTS - training,
            description="The whole valuation for one batch of generated images, and the values summed over every "
            "batch" + (" (the training shards are the train_shard job's)" if sharded else ""),
        ),
        dg.define_asset_job(
            "value_batch",
            selection=PER_BATCH,
            description=(
                "One batch of generated images: manifest, embeddings, quality, matches, credits (the sum follows)"
            ),
        ),
        dg.define_asset_job(
            "refresh_sources",
            selection=dg.AssetSelection.assets(
                sources.training_images, embeddings.similarity_model, embeddings.embedding_model
            ),
            description=(
                "Rescan the training images and the embedder (training a learned one); "
                "whatever their change affects follows by automation"
            ),
        ),
        dg.define_asset_job(
            "criteria",
            selection=dg.AssetSelection.all() - training,
            description="The valuation, then every criterion for the method and its baselines (criterion_report)",
        ),
    ]
    if sharded:
        jobs.append(
            dg.define_asset_job(
                "train_shard",
                selection=TRAIN_SIDE,
                description="One shard of the training images: its embeddings and its usearch index",
            )
        )
    return jobs
