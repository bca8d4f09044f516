"""Run GMValuator and every baseline on one (training set, generated set): the unit of each criterion.

The report assets call `run_methods` on the pipeline's own data, on a polluted training set (C3), on
another generation seed and another generator family (consistency); `removal_sets` and
`fidelity_measures` are the counterfactual of the fidelity criterion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from ..common.timing import timed
from ..demo.generator import DemoGenerator
from ..method.core import mirror
from ..method.embedders import Embedder
from ..method.matching import IndexShard
from ..method.rerank import PairDistance
from ..method.search import build_hnsw
from .criteria import cosine_rows, frechet_distance, nearest_distance
from .methods import (
    EmbeddedSets,
    MethodOutput,
    SimilaritySetup,
    random_method,
    score_method,
    similarity_method,
    timed_call,
    uniform_method,
)
from .tracin import TracInParams, tracin_scores

# The method and its ablations, then the baselines; the order of rows in every report.
METHODS = (
    "gmv",
    "gmv_q1",
    "gmv_exact",
    "gmv_flips",
    "gmv_upright",
    "gmv_pixels",
    "gmv_efficientnet_lite0",
    "gmv_rerank_l2",
    "gmv_rerank_lpips",
    "random",
    "uniform",
    "tracin",
)


@dataclass
class Suite:
    """How to run every method: the pipeline's similarity setup and the re-rank distances available."""

    setup: SimilaritySetup
    reranks: dict[str, PairDistance] = field(default_factory=dict)  # name -> distance, e.g. {"l2": ...}
    tracin: TracInParams = field(default_factory=TracInParams)
    seed: int = 0
    device: str = "cpu"
    embedders: dict[str, Embedder] = field(default_factory=dict)  # other backbones to run GMValuator with


@dataclass
class Generations:
    """The generated side of one experiment."""

    ids: list[str]
    images: list[np.ndarray]
    labels: list[str]


class TrainingRows(Sequence):
    """The training images as a sequence whose slices load only their rows (`load(rows)`), so that an embedder going
    through all of them (`Embedder.embed` reads a chunk at a time) holds one chunk, not the training set."""

    def __init__(self, load: Callable[[np.ndarray], list[np.ndarray]], n: int):
        self.load, self.n = load, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.load(np.arange(self.n)[index])
        return self.load(np.arange(self.n)[[index]])[0]


def run_methods(
    suite: Suite,
    sets: EmbeddedSets,
    train_images: Callable[[np.ndarray], list[np.ndarray]],
    train_labels: list[str],
    generations: Generations,
    generator: DemoGenerator | None,
    *,
    shards: Sequence[IndexShard] | None = None,
    exact_search: bool = False,
    gmv_seconds: dict[str, float] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[MethodOutput], dict[str, str]]:
    """Every method in METHODS that can run here, and for the others the reason they cannot.

    `shards`: the pipeline's saved indexes (matching.IndexShard), reused so that `gmv` reproduces its values exactly;
    without it one is built, unless `exact_search` (the pipeline searched exactly: small sets).
    `train_images(rows)` loads training images for re-ranking and TracIn.
    """
    setup = suite.setup
    outputs: list[MethodOutput] = []
    skipped: dict[str, str] = {}
    shared: dict[str, float] = dict(gmv_seconds or {})
    if shards is None and not exact_search:
        with timed(shared, "index", digits=None):
            shards = [IndexShard(0, len(sets.train), build_hnsw(sets.train, setup.settings.hnsw))]
    search = {"exact": True} if exact_search else {"shards": shards}
    outputs.append(similarity_method("gmv", sets, setup, **search, device=suite.device))
    outputs.append(similarity_method("gmv_q1", sets, setup, **search, unit_quality=True, device=suite.device))
    outputs.append(similarity_method("gmv_exact", sets, setup, exact=True, device=suite.device))
    # The flips setting the pipeline did not use, beside it (the temperature is the pipeline's, fitted on upright
    # training images either way): gmv_flips matches both orientations, gmv_upright the generated images as they are.
    flips = not setup.settings.match.flips
    if flips and sets.gen_mirrored is None:
        skipped["gmv_flips"] = "no embeddings of the generated images' mirror images given"
    else:
        name = "gmv_flips" if flips else "gmv_upright"
        outputs.append(similarity_method(name, sets, setup, **search, flips=flips, device=suite.device))
    own_scale = replace(setup, settings=replace(setup.settings, temperature=None))
    for name, embedder in suite.embedders.items():  # the same method on another backbone's distances
        embedded: dict[str, float] = {}
        train = timed_call(
            embedded, "embed_train", embedder.embed, TrainingRows(train_images, len(sets.train_ids)), suite.device
        )
        images = generations.images
        if setup.settings.match.flips:  # matched as the pipeline matches: its mirror images by this embedder too
            images = [*images, *(mirror(x) for x in images)]
        gen = timed_call(embedded, "embed_generated", embedder.embed, images, suite.device)
        m = len(generations.images)
        other = replace(sets, train=train, gen=gen[:m], gen_mirrored=gen[m:] if len(gen) > m else None)
        log(f"gmv_{name}: GMValuator on {name} embeddings ({other.train.shape[1]} dimensions)")
        outputs.append(
            similarity_method(f"gmv_{name}", other, own_scale, exact=exact_search, device=suite.device, seed=suite.seed)
        )
        outputs[-1].seconds.update(embedded)
    for name in ("l2", "lpips"):
        method = f"gmv_rerank_{name}"
        if name not in suite.reranks:
            skipped[method] = f"rerank={name} not available here (lpips needs the AlexNet weights file)"
            continue
        log(
            f"{method}: re-ranking {len(generations.ids)} x "
            f"{setup.settings.match.at_depth(setup.depth).candidates} candidates"
        )
        # Its distances have their own scale: the temperature is fitted to them, as the pipeline would.
        outputs.append(
            similarity_method(
                method,
                sets,
                own_scale,
                **search,
                pair_distance=suite.reranks[name],
                load_train=train_images,
                gen_images=generations.images,
                device=suite.device,
                seed=suite.seed,
            )
        )
    for out in outputs:  # stages every similarity variant shares with gmv (embedding, quality, index)
        for stage, sec in shared.items():
            if stage == "quality" and out.method == "gmv_q1" or stage == "index" and out.method == "gmv_exact":
                continue
            out.seconds.setdefault(stage, sec)
    total = float(sets.quality["q"].sum())
    # The random baselines draw anew for each generated set (seeded by config and the set's ids), as an
    # independent random valuation would; one fixed draw would look perfectly consistent.
    draw = suite.seed + int.from_bytes(hashlib.sha256("\n".join(sets.gen_ids).encode()).digest()[:4], "little")
    for baseline in (random_method, uniform_method):
        seconds: dict[str, float] = {}
        outputs.append(timed_call(seconds, "values", baseline, sets.train_ids, sets.gen_ids, total, setup.depth, draw))
        outputs[-1].seconds = seconds
    if generator is None or generator.spec.family != "vae" or not generator.snapshots:
        skipped["tracin"] = (
            "needs the demo VAE and its training snapshots (gradient methods need the model; "
            "not defined for this generator)"
        )
    else:
        log(
            f"tracin: gradients of {len(sets.train_ids)} training and {len(generations.ids)} generated images "
            f"at {len(generator.snapshots)} snapshots"
        )
        scores, seconds = tracin_scores(
            generator.model,
            generator.snapshots,
            generator.spec.vae.learning_rate,
            generator.classes,
            train_images(np.arange(len(sets.train_ids))),
            train_labels,
            generations.images,
            generations.labels,
            suite.tracin,
        )
        outputs.append(
            score_method("tracin", scores, sets.train_ids, sets.gen_ids, setup.depth, {"gradients": seconds})
        )
    return outputs, skipped


def removal_sets(values: pl.DataFrame, share: float, seed: int) -> dict[str, list[str]]:
    """The top, bottom and a random `share` of training ids by value; ties are broken by a seeded shuffle."""
    if not 0 < share < 1:
        raise ValueError(f"removal share must be in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    values = values.sort("train_id")  # the random arm must not depend on the method's row order
    ids = values["train_id"].to_numpy()
    v = values["value"].to_numpy().astype(np.float64)
    shuffle = rng.permutation(len(ids))
    order = shuffle[np.argsort(-v[shuffle], kind="stable")]  # descending value, random among equals
    p = max(1, round(len(ids) * share))
    return {
        "top": sorted(ids[order[:p]].tolist()),
        "bottom": sorted(ids[order[-p:]].tolist()),
        "random": sorted(ids[rng.choice(len(ids), p, replace=False)].tolist()),
    }


def fidelity_measures(
    before: np.ndarray, after: np.ndarray, removed: np.ndarray, train: np.ndarray
) -> dict[str, float]:
    """How generations from the same noise moved when a model was retrained without `removed`.

    - displacement: mean cosine distance between each generation and its counterpart (same noise);
    - distance_to_removed_gain: mean increase of the distance to the nearest removed image;
    - frechet_gain: change of the Fréchet distance (embedding space) to the full training set.
    """
    return {
        "displacement": float(cosine_rows(before, after).mean()),
        "distance_to_removed_gain": float(
            (nearest_distance(after, removed) - nearest_distance(before, removed)).mean()
        ),
        "frechet_gain": frechet_distance(after, train) - frechet_distance(before, train),
    }
