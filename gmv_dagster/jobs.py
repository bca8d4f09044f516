"""Jobs: the whole valuation, one batch, the training side, and the criteria reports."""

import dagster as dg

from .assets import credit, embeddings, matching, quality, sources

REPORTS = dg.AssetSelection.groups("reports")
PER_BATCH = dg.AssetSelection.assets(
    sources.generated_images, embeddings.generated_embeddings, quality.quality_scores, matching.matches, credit.credits
)

valuation_job = dg.define_asset_job(
    "valuation", selection=dg.AssetSelection.all() - REPORTS,
    description="The whole valuation for one batch of generated images, and the values summed over every batch",
)
value_batch_job = dg.define_asset_job(
    "value_batch", selection=PER_BATCH,
    description="One batch of generated images: manifest, embeddings, quality, matches, credits (the sum follows)",
)
refresh_sources_job = dg.define_asset_job(
    "refresh_sources", selection=dg.AssetSelection.assets(sources.training_images, embeddings.embedding_model),
    description="Rescan the training images and the embedder; whatever their change affects follows by automation",
)
criteria_job = dg.define_asset_job(
    "criteria", selection=dg.AssetSelection.all(),
    description="The valuation, then every criterion for the method and its baselines (criterion_report)",
)
ALL_JOBS = [valuation_job, value_batch_job, refresh_sources_job, criteria_job]
