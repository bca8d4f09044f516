"""q_j: no-reference quality of each generated image, in [0, 1]."""


import dagster as dg
import polars as pl
from pydantic import Field

from ..resources import DeviceResource, GmvHome, QualityScorerResource
from ..valuation.images import load_images
from ..valuation.sampling import seeded_rows
from .metadata import config_metadata, table_metadata, timed


class QualityConfig(dg.Config):
    reference_size: int = Field(default=1000, ge=10, description="training images that calibrate the scorer")
    seed: int = Field(default=0, description="seed of the reference sample and the noise anchor")


@dg.asset(group_name="quality", code_version="1")
def quality_scores(
    context, config: QualityConfig, generated_images: pl.DataFrame, training_images: pl.DataFrame,
    quality_scorer: QualityScorerResource, quality_device: DeviceResource, gmv_home: GmvHome,
) -> pl.DataFrame:
    """Quality q of each generated image (gen_id, raw_score, q), calibrated on the training images."""
    device = quality_device.torch_device()
    rows = seeded_rows(training_images.height, config.reference_size, config.seed)
    timings: dict = {}
    with timed(timings, "fit_seconds"):
        reference = load_images(training_images["uri"].gather(rows).to_list())
        model = quality_scorer.fit(reference, device, config.seed, gmv_home.subdir("quality"))
    with timed(timings, "score_seconds"):
        raw, q = model.score(load_images(generated_images["uri"].to_list()))
    context.log.info(f"scored {len(q)} generated images with {model.metric} in {timings['score_seconds']} s")
    df = pl.DataFrame({"gen_id": generated_images["id"], "raw_score": raw, "q": q})
    context.add_output_metadata(
        table_metadata(df, **{k: str(v) for k, v in model.describe().items()}, mean_q=float(q.mean()),
                       device=str(device), reference_size=config.reference_size, seed=config.seed, **timings,
                       **config_metadata(config))
    )
    return df
