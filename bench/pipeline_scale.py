"""The whole pipeline as the training set grows: wall time and peak memory per stage, and how each grows with n.

    .venv/bin/python bench/pipeline_scale.py [--sizes 60000 250000] [--generated 1000] [--work /tmp/gmv_scale]

For each n, writes a training set of n Fashion-MNIST-like images to a .npz (`training_set`: the 60,000 training
images, then copies shifted by up to 3 px on each axis and mirrored half the time, each with its source's \
label; seeded) and 1,000 Fashion-MNIST
test images as the generated batch, then runs `gmv run`'s job on them in a fresh GMV_HOME, every step in this
process (GMV_EXECUTOR=in_process) while a thread samples the process's RSS every 0.1 s. Per step: wall seconds
(from Dagster's step events) and the process's peak RSS while it ran (memory kept from earlier steps included:
what the machine must hold). Then, per step, the growth exponent b of seconds ~ n^b between the smallest and the
largest n. Last line: `n=<n> seconds=<s> peak_rss_gb=<g>` for the largest n. Sizes run in one process, largest
last: a step's peak includes what earlier sizes left allocated (run one size per process for clean figures).

After each size's first run a second batch of 1,000 other test images is valued against its home (as the inbox
sensor does; `--no-second-batch` skips it): its wall time, peak RSS and its own stages' seconds, what a later batch
costs, and how each of its steps grows with n. `--second-batch WORK/<n>` values only such a batch against a finished
run's home.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import psutil

from gmv_dagster.runner import run_valuation
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
from gmv_dagster.sources.images import read_idx


def training_set(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images: Fashion-MNIST's 60,000 training images, then seeded copies shifted by -3..3 px per axis (and
    mirrored half the time) of randomly drawn ones, each labelled as its source (about 1% are exact copies)."""
    images = read_idx(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz")
    labels = read_idx(DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz")
    if n <= len(images):
        return images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    extra = n - len(images)
    src = rng.integers(0, len(images), extra)
    out = np.empty((n, 28, 28), np.uint8)
    out[: len(images)] = images
    for start in range(0, extra, 50_000):
        rows = src[start : start + 50_000]
        block = images[rows].copy()
        mirror = rng.random(len(rows)) < 0.5
        block[mirror] = block[mirror][:, :, ::-1]
        dy, dx = rng.integers(-3, 4, (2, len(rows)))
        for i, (a, b) in enumerate(zip(dy, dx)):
            block[i] = np.roll(block[i], (a, b), axis=(0, 1))
        out[len(images) + start : len(images) + start + len(rows)] = block
    return out, np.concatenate([labels, labels[src]])


class RssSampler(threading.Thread):
    """Resident set size of a process (this one, or `pid`) every `every` seconds until stopped or the process ends."""

    def __init__(self, every: float = 0.1, pid: int | None = None):
        super().__init__(daemon=True)
        self.every, self.samples, self.stopped = every, [], threading.Event()
        self.process = psutil.Process(pid)

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.samples.append((time.time(), self.process.memory_info().rss))
            except psutil.Error:  # a watched child that has exited
                return
            time.sleep(self.every)

    def peak(self, start: float, end: float) -> int:
        """The largest sample in [start, end], widened by one sampling period (a step shorter than it still gets
        the samples around it)."""
        inside = [rss for t, rss in self.samples if start - self.every <= t <= end + self.every]
        return max(inside) if inside else 0


def step_windows(instance: dg.DagsterInstance) -> dict[str, tuple[float, float]]:
    """step key -> (start, end) timestamps over every run of the instance, oldest run first (a later run of a step
    replaces an earlier one)."""
    out: dict[str, list[float]] = {}
    for run in reversed(instance.get_runs()):
        for entry in instance.all_logs(run.run_id):
            if entry.dagster_event is None or entry.step_key is None:
                continue
            kind = entry.dagster_event.event_type
            if kind == dg.DagsterEventType.STEP_START:
                out[entry.step_key] = [entry.timestamp, math.inf]
            elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE) and entry.step_key in out:
                out[entry.step_key][1] = entry.timestamp
    return {k: (a, b) for k, (a, b) in out.items()}


def measure(n: int, generated: int, work: Path) -> tuple[dict[str, tuple[float, float]], float, float]:
    """{step: (seconds, peak RSS GB)}, the whole run's wall seconds and peak RSS GB, at training size n."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    images, labels = training_set(n)
    np.savez(work / "train.npz", images=images, labels=labels.astype(np.int64))
    test = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[:generated]
    np.savez(work / "generated.npz", images=test)
    del images, test
    env = {
        **os.environ,
        "GMV_TRAIN_SOURCE": str(work / "train.npz"),
        "GMV_GENERATED_SOURCE": str(work / "generated.npz"),
        "GMV_EXECUTOR": "in_process",
    }
    instance = dg.DagsterInstance.ephemeral()
    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    result = run_valuation(work / "home", instance, env=env)
    wall = time.perf_counter() - start
    sampler.stopped.set()
    sampler.join()
    if not result.success:
        raise SystemExit(f"the run at n = {n} failed; see the Dagster log above")
    steps = {key: (end - begin, sampler.peak(begin, end) / 1e9) for key, (begin, end) in step_windows(instance).items()}
    return steps, wall, max(rss for _, rss in sampler.samples) / 1e9  # over the run only, not building the set


BATCH_STAGES = [
    ("generated_embeddings", "seconds"),
    ("quality_scores", "score_seconds"),
    ("matches", "search_seconds"),
    ("credits", "seconds"),
]


def value_batch(work: Path, generated: int, name: str, recall_sample: int | None = None) -> dict:
    """Value a new batch (`name`, a new inbox folder of `generated` other test images) against the home of a finished
    `measure(n, ...)` in `work`, as the inbox sensor does (with method.recall_sample set to `recall_sample` where
    given): {"wall", "peak" (GB), "steps": {step: (seconds, peak GB)}, "own": {asset: seconds}}."""
    from gmv_dagster.sources.batches import write_inbox_batch

    inbox = work / "inbox"
    env = {
        **os.environ,
        "GMV_TRAIN_SOURCE": str(work / "train.npz"),
        "GMV_EXECUTOR": "in_process",
        "GMV_GENERATED_SOURCE": str(work / "generated.npz"),
        "GMV_INBOX": str(inbox),
    }
    images = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[generated : 2 * generated]
    if (inbox / name).exists():
        raise SystemExit(f"{inbox / name} exists: name a batch that was not valued yet (--batch-name)")
    write_inbox_batch(inbox, name, images)
    instance = dg.DagsterInstance.ephemeral()
    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    run_config = (
        {} if recall_sample is None else {"resources": {"method": {"config": {"recall_sample": recall_sample}}}}
    )
    if not run_valuation(work / "home", instance, run_config, env=env, batches=[name]).success:
        raise SystemExit("the second batch failed; see the Dagster log above")
    wall = time.perf_counter() - start
    sampler.stopped.set()
    sampler.join()
    steps = {key: (end - begin, sampler.peak(begin, end) / 1e9) for key, (begin, end) in step_windows(instance).items()}
    own = {
        asset: float(
            instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization.metadata[key].value
        )
        for asset, key in BATCH_STAGES
    }
    return {
        "wall": wall,
        "peak": max(rss for _, rss in sampler.samples) / 1e9,
        "steps": steps,
        "own": own,
        "images": len(images),
    }


def print_batch(batch: dict, home: Path) -> None:
    print("\n# every step of the batch's run\n\n| step | seconds | peak RSS GB |\n|---|---|---|")
    for key, (seconds, rss) in sorted(batch["steps"].items(), key=lambda kv: -kv[1][0]):
        print(f"| {key} | {seconds:.2f} | {rss:.2f} |")
    print(f"\n# a second batch of {batch['images']:,} against {home}\n\n| stage | seconds |\n|---|---|")
    for asset, seconds in batch["own"].items():
        print(f"| {asset} | {seconds:.3f} |")
    own = sum(batch["own"].values())
    print(f"| **its own stages** | **{own:.2f}** ({1000 * own / batch['images']:.2f} ms per image) |")


def growth(runs: dict[int, dict[str, tuple[float, float]]], title: str, shortest: float = 0.5) -> None:
    """Per step, b of seconds ~ n^b and c of peak RSS ~ n^c between the smallest and the largest n (steps of at
    least `shortest` seconds at the smallest n)."""
    small, large = min(runs), max(runs)
    print(
        f"\n# {title}: growth from n = {small:,} to {large:,}: seconds ~ n^b, peak RSS ~ n^c\n\n"
        "| step | b | c |\n|---|---|---|"
    )
    ratio = math.log(large / small)
    for key, (seconds, rss) in sorted(runs[large].items(), key=lambda kv: -kv[1][0]):
        if key in runs[small] and runs[small][key][0] >= shortest:
            s0, r0 = runs[small][key]
            print(
                f"| {key} | {math.log(seconds / s0) / ratio:.2f} | "
                f"{math.log(max(rss, 1e-9) / max(r0, 1e-9)) / ratio:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[60000, 250000])
    parser.add_argument("--generated", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gmv_scale"))
    parser.add_argument("--second-batch", type=Path, help="value only a new batch against WORK/<n> of an earlier run")
    parser.add_argument("--batch-name", default="second-batch", help="the new batch's name (with --second-batch)")
    parser.add_argument(
        "--recall-sample",
        type=int,
        help="method.recall_sample for the second batch (0: no check against exact search; default: the pipeline's)",
    )
    parser.add_argument("--no-second-batch", action="store_true", help="with --sizes: skip the second batch per size")
    args = parser.parse_args()
    if args.second_batch:
        batch = value_batch(args.second_batch, args.generated, args.batch_name, args.recall_sample)
        print_batch(batch, args.second_batch / "home")
        print(
            f"second_batch_seconds={batch['wall']:.1f} own_stages_seconds={sum(batch['own'].values()):.2f} "
            f"peak_rss_gb={batch['peak']:.2f}"
        )
        return
    runs, batches = {}, {}
    for n in sorted(args.sizes):
        runs[n] = measure(n, args.generated, args.work / str(n))
        steps, wall, peak = runs[n]
        print(
            f"\n# n = {n:,} training images, {args.generated:,} generated: {wall:.1f} s wall, "
            f"peak RSS {peak:.2f} GB\n\n| step | seconds | peak RSS GB |\n|---|---|---|"
        )
        for key, (seconds, rss) in sorted(steps.items(), key=lambda kv: -kv[1][0]):
            print(f"| {key} | {seconds:.2f} | {rss:.2f} |")
        if not args.no_second_batch:
            batches[n] = value_batch(args.work / str(n), args.generated, args.batch_name, args.recall_sample)
            print_batch(batches[n], args.work / str(n) / "home")
    if len(runs) > 1:
        growth({n: steps for n, (steps, _, _) in runs.items()}, "first run")
    if len(batches) > 1:
        print("\n# a second batch as n grows\n\n| n | wall s | its own stages s | peak RSS GB |\n|---|---|---|---|")
        for n, batch in batches.items():
            print(f"| {n:,} | {batch['wall']:.1f} | {sum(batch['own'].values()):.2f} | {batch['peak']:.2f} |")
        growth(
            {n: {**batch["steps"], "whole batch": (batch["wall"], batch["peak"])} for n, batch in batches.items()},
            "second batch",
            shortest=0.05,
        )  # short steps too: those that grow with n are short
    large = max(runs)
    steps, wall, peak = runs[large]
    print(f"n={large} seconds={wall:.1f} peak_rss_gb={peak:.2f}")


if __name__ == "__main__":
    main()
