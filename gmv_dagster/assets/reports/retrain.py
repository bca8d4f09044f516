"""What the criteria that retrain the demo generator share: sampling a retrained generator, and the row they
leave where the generated images came from elsewhere."""

import polars as pl

from ...evaluation.experiments import Generations
from .baselines import ReportKit
from .tables import Rows, report_metadata

NEEDS_GENERATOR = "needs the demo generator (retrains it); the generated images came from elsewhere"


def not_run_without_generator(context, rows: Rows, metric: str, setting: str) -> pl.DataFrame:
    """The criterion's only row when the generated images did not come from the demo generator."""
    rows.not_run(metric, "all", setting, NEEDS_GENERATOR)
    df = rows.frame()
    context.add_output_metadata(report_metadata(df, NEEDS_GENERATOR, ""))
    return df


def sample_generations(kit: ReportKit, generator, seed: int, tag: str, n: int | None = None) -> Generations:
    """`n` samples of a (retrained) demo generator, by default as many as the pipeline's generator made."""
    images, labels = generator.sample(n or kit.n_generated, seed, kit.generator_device.torch_device())
    return Generations([f"{tag}:{j:06d}" for j in range(len(images))], list(images), labels)
