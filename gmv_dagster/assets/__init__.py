"""Thin Dagster assets, one module per group; each calls gmv_dagster.valuation."""

from . import credit, embeddings, matching, quality, sources

ALL_ASSETS = [
    sources.training_images, sources.demo_generator, sources.generated_images,
    embeddings.train_embeddings, embeddings.generated_embeddings,
    matching.train_index, matching.matches,
    quality.quality_scores,
    credit.credits, credit.training_values,
]
ALL_CHECKS = [credit.values_sum_to_quality]
