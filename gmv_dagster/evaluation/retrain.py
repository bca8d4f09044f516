"""The demo generator retrained on many training subsets, with one or more seeds each, and one output per generated
sample measured of each retrained model: what LDS and group LDS correlate with.

Each model is cached by content (`demo.generator.cached_generator`: its training data and spec), so a subset and
seed retrained once, by a report or a bench, is reused by the next. On the CPU the retrains run in a pool of
processes with one torch thread each: the demo VAE's small matrices keep two threads about 1.3 x as fast as one,
so two processes of one thread finish two models in about 0.7 x the time (measured on 2 cores: 13.8 s for one model
with 2 threads, 20 s for two with 1 thread each). Results do not depend on the pool's size; within float rounding
they do not depend on the thread count either.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..demo.generator import DemoGenerator, GeneratorSpec, cached_generator, data_key
from .lds import marginal_vae_outputs, model_outputs


@dataclass(frozen=True)
class OutputOf:
    """What is measured of a retrained model, per generated image: its likelihood of the image under the image's
    label (`labels`; the VAE's ELBO, the DDPM's minus denoising loss, with `seed` for the DDPM's noise), or with
    `labels` None the ELBO under a uniform mixture of the classes the model knows (group LDS)."""

    images: Sequence[np.ndarray]
    labels: Sequence[str] | None
    seed: int = 0

    def __call__(self, generator: DemoGenerator) -> np.ndarray:
        if self.labels is None:
            return marginal_vae_outputs(generator, self.images)
        return model_outputs(generator, self.images, self.labels, self.seed)


@dataclass(frozen=True)
class TrainingSet:
    """The full training set the subsets index: images, content hashes (the checkpoints' key) and labels."""

    images: Sequence[np.ndarray]
    hashes: Sequence[str]
    labels: Sequence[str]

    def subset(self, keep: np.ndarray) -> tuple[list[np.ndarray], str, list[str]]:
        images, labels = [self.images[r] for r in keep], [self.labels[r] for r in keep]
        return images, data_key([self.hashes[r] for r in keep], labels), labels


def seeded(spec: GeneratorSpec, seed: int) -> GeneratorSpec:
    """The spec with its family's training seed replaced."""
    if spec.family == "vae":
        return replace(spec, vae=replace(spec.vae, seed=seed))
    return replace(spec, diffusion=replace(spec.diffusion, seed=seed))


def retrain_seeds(spec: GeneratorSpec, count: int) -> list[int]:
    """The seeds of `count` retrains per subset: the pipeline's, then the next ones."""
    return [spec.params.seed + i for i in range(count)]


def _retrain_one(spec, train: TrainingSet, keep, output: OutputOf, folder: Path, device) -> np.ndarray:
    images, key, labels = train.subset(keep)
    generator, _ = cached_generator(spec, images, labels, key, folder, device)
    return output(generator)


_WORKER: dict = {}  # a pool worker's training set, output and folder, sent once by the initializer


def _worker_init(train: TrainingSet, output: OutputOf, folder: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(train=train, output=output, folder=folder)


def _worker_task(spec: GeneratorSpec, keep: np.ndarray) -> np.ndarray:
    return _retrain_one(spec, _WORKER["train"], keep, _WORKER["output"], _WORKER["folder"], "cpu")


def retrained_outputs(
    spec: GeneratorSpec,
    train: TrainingSet,
    subsets: np.ndarray,
    seeds: Sequence[int],
    output: OutputOf,
    folder: Path,
    device: str = "cpu",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """(len(seeds), S, m): `output` of the generator retrained on each subset (S x n masks over `train`) with each
    seed. On the CPU with workers > 1 the models train in that many processes (spawned, one torch thread each, the
    cores shared among them); elsewhere one after another here."""
    say = log or (lambda _: None)
    masks = np.asarray(subsets, bool)
    jobs = [
        (r, s, seeded(spec, seed), np.flatnonzero(mask)) for r, seed in enumerate(seeds) for s, mask in enumerate(masks)
    ]
    out = np.empty((len(seeds), len(masks), len(output.images)))
    started = time.perf_counter()

    def done(count: int) -> None:
        elapsed = time.perf_counter() - started
        say(f"retrained {count}/{len(jobs)} models ({elapsed / count:.1f} s per model, {elapsed:.0f} s)")

    if workers <= 1 or str(device) != "cpu":
        for count, (r, s, job_spec, keep) in enumerate(jobs, 1):
            out[r, s] = _retrain_one(job_spec, train, keep, output, folder, device)
            done(count)
        return out
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _worker_init, (train, output, folder, threads)) as pool:
        futures = {pool.submit(_worker_task, job_spec, keep): (r, s) for r, s, job_spec, keep in jobs}
        for count, future in enumerate(as_completed(futures), 1):
            r, s = futures[future]
            out[r, s] = future.result()
            done(count)
    return out
