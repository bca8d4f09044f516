"""Dagster-free bookkeeping of the pipeline: content versions, reuse of stored embeddings, training shards."""
