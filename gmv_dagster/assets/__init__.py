"""Thin Dagster assets, one module per group; each calls gmv_dagster.valuation."""

from . import baselines, checks, counterfactuals, credit, criteria, embeddings, matching, quality, sources

PIPELINE_ASSETS = [
    sources.training_images, sources.demo_generator, sources.generated_images,
    embeddings.embedding_model, embeddings.train_embeddings, embeddings.generated_embeddings,
    matching.train_index, matching.matches,
    quality.quality_calibration, quality.quality_scores,
    credit.credits, credit.training_values,
]
REPORT_ASSETS = [
    baselines.method_valuations,
    criteria.criterion_classes, criteria.criterion_diversity, criteria.criterion_efficiency,
    counterfactuals.criterion_reasonableness, counterfactuals.criterion_ood, counterfactuals.criterion_fidelity, counterfactuals.criterion_consistency,
    criteria.criterion_report,
]
ALL_ASSETS = PIPELINE_ASSETS + REPORT_ASSETS
ALL_CHECKS = checks.ALL_CHECKS
