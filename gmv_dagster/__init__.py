"""gmv-dagster: GMValuator (similarity-based data valuation for generative models) as a Dagster asset pipeline.

Packages by purpose (docs/DESIGN.md has the map):
- method/      GMValuator itself: embed, search, index, match, re-rank, quality, credit; core.py runs it.
- sources/     where images come from: folders, .npz, Fashion-MNIST, batches of generated images.
- pipeline/    bookkeeping without Dagster: content versions, reuse of embeddings, training shards.
- evaluation/  the criteria, the baselines, TracIn, pollution, near-copy benchmarks, LDS.
- demo/        the demo's generators.
- common/      small utilities every package shares.
- assets/, resources/, definitions.py, jobs.py, sensors.py, executors.py, runner.py, cli.py: the Dagster side.
"""
