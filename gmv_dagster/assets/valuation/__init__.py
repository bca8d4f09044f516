"""The valuation's asset groups: sources, embeddings, matching, quality, credit, and the checks that gate them."""

from . import checks, credit, embeddings, matching, quality, sources

VALUATION_ASSETS = [
    sources.training_images,
    sources.demo_generator,
    sources.generated_images,
    embeddings.similarity_model,
    embeddings.embedding_model,
    embeddings.train_embeddings,
    embeddings.generated_embeddings,
    matching.train_index,
    matching.credit_temperature,
    matching.matches,
    quality.quality_calibration,
    quality.training_details,
    quality.quality_scores,
    credit.credits,
    credit.training_values,
]
valuation_checks = checks.valuation_checks
