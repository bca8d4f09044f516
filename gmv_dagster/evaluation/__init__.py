"""How far to trust the values: the criteria, the baselines, TracIn, pollution, LDS (no Dagster)."""
