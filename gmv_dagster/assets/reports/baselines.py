"""GMValuator and every baseline on the pipeline's own data, and the kit the criterion assets share."""

from dataclasses import dataclass, replace

import dagster as dg
import numpy as np
import polars as pl

from ...common.sampling import seeded_rows
from ...demo.generator import DemoGenerator, GeneratorSpec
from ...evaluation.experiments import Generations, Suite, run_methods
from ...evaluation.methods import (
    EmbeddedSets,
    MethodOutput,
    SimilaritySetup,
    method_contributors_table,
    method_values_table,
)
from ...evaluation.retrain import OutputOf, TrainingSet, retrained_outputs
from ...method.core import match, mirror
from ...method.matching import IndexShard
from ...method.quality import REFERENCE_SIZE, QualityModel
from ...pipeline.vectors import embedding_matrix
from ...resources import (
    DeviceResource,
    EmbedderResource,
    GmvHome,
    ImageSources,
    MethodResource,
    QualityScorerResource,
    ReportSettings,
)
from ...resources.warehouse import read_stored_rows
from ...sources.images import ImageSequence, load_images
from ..metadata import latest_metadata, table_metadata
from ..steps import GPU_TAGS
from ..valuation.matching import open_index_shards
from ..valuation.sources import train_demo_generator

# Reports rerun the pipeline as it ran (the method resource's settings, credit_temperature's stored fit, the quality
# and generator settings of their latest materialisations), so they run after these.
SETTINGS_FROM = [
    "demo_generator",
    "train_index",
    "credit_temperature",
    "matches",
    "credits",
    "quality_calibration",
    "quality_scores",
]


@dataclass
class ReportKit:
    """The pipeline's settings (the method resource's; the quality and generator settings from their latest
    materialisations) and the models to rerun it."""

    context: object
    setup: SimilaritySetup
    suite: Suite
    embedder: object
    embed_device: DeviceResource
    quality_scorer: QualityScorerResource
    quality_device: DeviceResource
    generator_device: DeviceResource
    gmv_home: GmvHome
    generator_spec: GeneratorSpec | None
    n_generated: int
    generation_seed: int
    reference_size: int
    quality_seed: int
    retrain_workers: int

    def retrained_outputs(
        self, train: TrainingSet, subsets: np.ndarray, seeds: list[int], output: OutputOf
    ) -> np.ndarray:
        """(seeds, subsets, m) outputs of the demo generator retrained on each subset with each seed (cached)."""
        return retrained_outputs(
            self.generator_spec,
            train,
            subsets,
            seeds,
            output,
            self.gmv_home.subdir("checkpoints"),
            str(self.generator_device.torch_device()),
            self.retrain_workers,
            self.log,
        )

    def log(self, message: str) -> None:
        self.context.log.info(message)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        dev, dtype = self.embed_device.torch_device(), self.embed_device.torch_dtype()
        return self.embedder.to(dev, dtype).embed(images, dev, self.embed_device.batch_size, dtype)

    def fit_quality(self, train_images: list[np.ndarray], tag: str) -> QualityModel:
        """The scorer refit as the pipeline fits it, on a seeded reference sample of these training images."""
        rows = seeded_rows(len(train_images), self.reference_size, self.quality_seed)
        return self.quality_scorer.fit(
            [train_images[i] for i in rows],
            self.quality_device.torch_device(),
            self.quality_seed,
            self.gmv_home.subdir(f"reports/{tag}"),
        )

    def generator(
        self, spec: GeneratorSpec, images: list[np.ndarray], hashes: list[str], labels: list[str]
    ) -> DemoGenerator:
        return train_demo_generator(self.log, spec, images, hashes, labels, self.gmv_home, self.generator_device)[0]

    def value(
        self,
        train_ids: list[str],
        train_images: list[np.ndarray],
        train_labels: list[str],
        generations: Generations,
        generator: DemoGenerator | None,
        quality: QualityModel,
        train_emb: np.ndarray | None = None,
    ) -> tuple[list[MethodOutput], dict[str, str]]:
        """Every method on a training set and a generated set that the pipeline did not see."""
        if train_emb is None:
            train_emb = self.embed(train_images)
        gen_emb = self.embed(generations.images)
        gen_mirrored = self.embed([mirror(image) for image in generations.images])
        references = None
        if quality.references:  # each generation's top matches by exact search (the reports start without re-rank)
            params = self.setup.settings.match
            shards, mirrored = [IndexShard(0, len(train_emb))], gen_mirrored if params.flips else None
            idx, dist = match(train_emb, gen_emb, params, shards, self.suite.device, mirrored=mirrored)
            refs = quality.reference_rows(idx[:, : params.k], dist[:, : params.k])
            references = [[train_images[i] for i in rows] for rows in refs]
        _, q = quality.score(generations.images, references=references)
        sets = EmbeddedSets(
            train_ids,
            generations.ids,
            train_emb,
            gen_emb,
            pl.DataFrame({"gen_id": generations.ids, "q": q}),
            gen_mirrored,
        )
        return run_methods(
            self.suite,
            sets,
            lambda rows: [train_images[i] for i in rows],
            train_labels,
            generations,
            generator,
            # searched as the pipeline would search a training set of this size
            exact_search=self.setup.settings.match.uses_exact(len(train_ids)),
            log=self.log,
        )


def report_kit(
    context,
    gmv_home: GmvHome,
    method: MethodResource,
    embedder: EmbedderResource,
    quality_scorer: QualityScorerResource,
    report_settings: ReportSettings,
    embedding_device: DeviceResource,
    quality_device: DeviceResource,
    generator_device: DeviceResource,
    matching_device: DeviceResource,
) -> ReportKit:
    """The kit with the method's settings as the pipeline ran them: the method resource's, the temperature the
    stored credit_temperature fitted where none is set."""
    if method.rerank != "none":
        raise ValueError(
            "the reports compare re-rank choices themselves and start from matches without re-ranking: "
            "set resources.method's rerank to none and materialise the pipeline, then the reports"
        )
    quality_md, generator_md = (
        latest_metadata(context, "quality_calibration"),
        latest_metadata(context, "demo_generator"),
    )
    configured = method.settings()

    def fitted() -> float:
        stored = read_stored_rows(gmv_home.database, "credit_temperature")
        if stored is None or not stored.height:
            raise ValueError("the reports need credit_temperature's fit: materialise the pipeline first")
        return float(stored["temperature"][0])

    setup = SimilaritySetup(replace(configured, temperature=configured.temperature_or(fitted)))
    spec = GeneratorSpec.from_dict(generator_md["generator_spec"]) if "generator_spec" in generator_md else None
    return ReportKit(
        context,
        setup,
        report_settings.suite(setup, matching_device.torch_device(), embedder.backbone),
        embedder.load_stored(gmv_home),
        embedding_device,
        quality_scorer,
        quality_device,
        generator_device,
        gmv_home,
        spec,
        int(generator_md.get("n_samples", 0)),
        spec.params.seed if spec else 0,
        int(quality_md.get("reference_size", REFERENCE_SIZE)),
        int(quality_md.get("seed", 0)),
        report_settings.workers(),
    )


def pipeline_generator(kit: ReportKit, training_images: pl.DataFrame, images: list[np.ndarray]) -> DemoGenerator | None:
    """The demo generator that made the generated images (from its checkpoint), or None for user data."""
    if kit.generator_spec is None:
        return None
    return kit.generator(
        kit.generator_spec, images, training_images["content_hash"].to_list(), training_images["label"].to_list()
    )


@dg.multi_asset(
    outs={
        "method_values": dg.AssetOut(
            description="Value of every training image by GMValuator, its ablations and the baselines "
            "(method, train_id, value).",
            kinds={"duckdb", "polars", "pytorch"},
        ),
        "method_contributors": dg.AssetOut(
            description="Each method's ranked contributors per generated image (method, gen_id, train_id, rank).",
            kinds={"duckdb", "polars", "pytorch"},
        ),
        "method_timings": dg.AssetOut(
            description="Seconds per stage of each method on the pipeline's data "
            "(method, stage, seconds, n_generated).",
            kinds={"duckdb", "polars", "pytorch"},
        ),
    },
    group_name="reports",
    code_version="1",
    op_tags=GPU_TAGS,
    deps=SETTINGS_FROM,
)
def method_valuations(
    context,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    train_embeddings: pl.DataFrame,
    generated_embeddings: pl.DataFrame,
    quality_scores: pl.DataFrame,
    training_values: pl.DataFrame,
    image_sources: ImageSources,
    gmv_home: GmvHome,
    method: MethodResource,
    embedder: EmbedderResource,
    quality_scorer: QualityScorerResource,
    report_settings: ReportSettings,
    embedding_device: DeviceResource,
    quality_device: DeviceResource,
    generator_device: DeviceResource,
    matching_device: DeviceResource,
):
    """GMValuator (as the pipeline ran it), q = 1, exact search, each re-rank, random, uniform and TracIn."""
    kit = report_kit(
        context,
        gmv_home,
        method,
        embedder,
        quality_scorer,
        report_settings,
        embedding_device,
        quality_device,
        generator_device,
        matching_device,
    )
    train_images = ImageSequence(training_images["uri"].to_list())  # loaded when a method asks for a row
    # Batches are stored table by table; line the manifest up with the embeddings by id, not by position.
    generated_images = generated_images.join(generated_embeddings.select("id").with_row_index("_row"), on="id").sort(
        "_row"
    )
    gen_images = load_images(generated_images["uri"].to_list())
    sets = EmbeddedSets(
        train_embeddings["id"].to_list(),
        generated_embeddings["id"].to_list(),
        np.asarray(gmv_home.vector_store.train_vectors(train_embeddings)),
        embedding_matrix(generated_embeddings),
        quality_scores.select("gen_id", "q"),
        kit.embed([mirror(image) for image in gen_images]),
    )
    specs, shards = open_index_shards(gmv_home, train_embeddings)
    # Stages the pipeline already ran, timed by its own assets: shared by every similarity variant.
    md = {
        name: latest_metadata(context, name)
        for name in ("train_embeddings", "generated_embeddings", "train_index", "quality_calibration", "quality_scores")
    }
    shared = {
        "embed_train": md["train_embeddings"].get("seconds"),
        "embed_generated": md["generated_embeddings"].get("seconds"),
        "index": md["train_index"].get("build_seconds"),
        "quality": (md["quality_calibration"].get("fit_seconds") or 0)
        + (md["quality_scores"].get("score_seconds") or 0),
    }
    generations = Generations(sets.gen_ids, gen_images, generated_images["label"].to_list())
    outputs, skipped = run_methods(
        kit.suite,
        sets,
        lambda rows: [train_images[i] for i in rows],
        training_images["label"].to_list(),
        generations,
        pipeline_generator(kit, training_images, train_images),
        shards=shards,
        exact_search=all(spec["mode"] == "exact" for spec in specs),
        gmv_seconds={k: float(v) for k, v in shared.items() if v is not None},
        log=kit.log,
    )

    gmv = next(o for o in outputs if o.method == "gmv").values
    gap = gmv.join(training_values.select("train_id", "value"), on="train_id", suffix="_pipeline")
    max_gap = float((gap["value"] - gap["value_pipeline"]).abs().max())
    if gap.height != training_values.height or max_gap > 1e-9:
        raise ValueError(
            f"GMValuator rerun for the reports differs from training_values (max gap {max_gap:.3g}): "
            "rematerialise the pipeline and the reports in one run"
        )
    values, contributors = method_values_table(outputs), method_contributors_table(outputs)
    timings = pl.DataFrame(
        [
            {"method": o.method, "stage": stage, "seconds": float(sec), "n_generated": len(sets.gen_ids)}
            for o in outputs
            for stage, sec in o.seconds.items()
        ],
        schema={"method": pl.String, "stage": pl.String, "seconds": pl.Float64, "n_generated": pl.Int64},
    )
    not_run = dg.MetadataValue.json(skipped)
    yield dg.Output(values, "method_values", metadata=table_metadata(values, not_run=not_run, gmv_equals_pipeline=True))
    yield dg.Output(
        contributors, "method_contributors", metadata=table_metadata(contributors, depth=kit.suite.setup.depth)
    )
    yield dg.Output(timings, "method_timings", metadata=table_metadata(timings, preview_rows=40))
