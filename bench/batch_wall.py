"""What a user waits for: a new batch dropped into the inbox, valued by `gmv run`, at several batch sizes m and
training-set sizes n. Wall time from the command's start to its exit, split into its parts, and peak memory.

    .venv/bin/python bench/batch_wall.py [--sizes 60000] [--batches 1000 10000] [--work /tmp/gmv_batch_wall]
    .venv/bin/python bench/batch_wall.py --sizes 60000 1000000 --batches 1000 10000 100000   # the issue's grid

For each n: a home valued once (the training set as bench/pipeline_scale.py builds it, a .npz; the configured
generated source 1,000 Fashion-MNIST test images), kept in --work and reused while its inputs are unchanged (the
one-off side is not what this measures: bench/end_to_end.py and bench/pipeline_scale.py time it). Then, for each m,
a batch of m PNG files (Fashion-MNIST test images, shifted copies past 10,000) is written into the inbox with its
_COMPLETE marker, and `gmv run` runs as a user runs it (a fresh process; it values the new batch and the sum in one
run, pipeline/inputs.py), timed from outside. The parts, from the Dagster run's own events:
- launch: the command's start to the run's start (Python, imports, the definitions, deciding what changed);
- model loads: resource initialisation inside the run (devices, embedder, quality scorer);
- stages: the steps' own seconds (generated_images, generated_embeddings, matches, quality_scores, credits,
  training_values);
- bookkeeping: the rest of the run (Dagster's events, IO manager reads and writes between steps, checks);
- exit: the run's end to the command's exit (printing the top table, interpreter teardown).
Then `gmv run` once more with nothing new. Peak memory: the largest resident set of the command's process.
Last line: `ms_per_image_10k_60k=<x> s_1k_60k=<y> s_100k_1m=<z>` (`nan` where that cell was not measured).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_scale import RssSampler, training_set  # noqa: E402

from gmv_dagster.sources.batches import write_inbox_batch  # noqa: E402
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST  # noqa: E402
from gmv_dagster.sources.images import read_idx  # noqa: E402

GMV = Path(sys.executable).parent / "gmv"
STAGES = ("generated_images", "generated_embeddings", "matches", "quality_scores", "credits", "training_values")
SOURCE_BATCH = 1000


def environment(work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME" and not k.startswith("GMV_")}
    return {
        **env,
        "GMV_HOME": str(work / "home"),
        "GMV_TRAIN_SOURCE": str(work / "train.npz"),
        "GMV_GENERATED_SOURCE": str(work / "generated.npz"),
    }


def gmv_run(env: dict) -> tuple[float, float, subprocess.CompletedProcess, float]:
    """`gmv run` in a fresh process: (wall seconds, start time, the process, its peak RSS in GB sampled every
    0.05 s); raises if it failed."""
    start_time = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(GMV), "run", "-n", "3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = RssSampler(every=0.05, pid=proc.pid)
    sampler.start()
    out = proc.communicate()
    wall = time.perf_counter() - start
    sampler.stopped.set()
    sampler.join()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, *out)
    if done.returncode:
        raise SystemExit(f"gmv run failed:\n{done.stderr[-4000:]}")
    return wall, start_time, done, max((rss for _, rss in sampler.samples), default=0) / 1e9


def prepare_home(n: int, work: Path) -> None:
    """The home of training size n, valued once (reused when `gmv run` finds nothing new in it)."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "train.npz").is_file():
        images, labels = training_set(n)
        np.savez(work / "train.npz", images=images, labels=labels.astype(np.int64))
        test = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[:SOURCE_BATCH]
        np.savez(work / "generated.npz", images=test)
    wall, _, done, _ = gmv_run(environment(work))
    said = "nothing new" if done.stdout.startswith("nothing new") else "valued"
    print(f"n = {n:,}: home {work / 'home'} {said} in {wall:.1f} s", flush=True)


def batch_images(m: int, seed: int = 0) -> np.ndarray:
    """m generated images: Fashion-MNIST test images past the source batch's, then seeded shifted copies."""
    test = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[SOURCE_BATCH:]
    if m <= len(test):
        return test[:m]
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(test), m - len(test))
    shifts = rng.integers(-2, 3, (len(rows), 2))
    extra = np.stack([np.roll(test[r], tuple(s), axis=(0, 1)) for r, s in zip(rows, shifts)])
    return np.concatenate([test, extra])


def run_parts(home: Path, run_id: str, start_time: float, wall: float) -> dict[str, float]:
    """The command's wall split by the run's events (see the module's docstring)."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    logs = instance.all_logs(run_id)
    kinds = dg.DagsterEventType
    first = min(e.timestamp for e in logs)
    last = max(e.timestamp for e in logs)
    steps: dict[str, list[float]] = {}
    loads = 0.0
    load_start: dict[str, float] = {}
    for e in logs:
        event = e.dagster_event
        if event is None:
            continue
        if event.event_type == kinds.STEP_START:
            steps[e.step_key] = [e.timestamp, e.timestamp]
        elif event.event_type in (kinds.STEP_SUCCESS, kinds.STEP_FAILURE):
            steps[e.step_key][1] = e.timestamp
        elif event.event_type == kinds.RESOURCE_INIT_STARTED:
            load_start[e.step_key or ""] = e.timestamp
        elif event.event_type == kinds.RESOURCE_INIT_SUCCESS and (e.step_key or "") in load_start:
            loads += e.timestamp - load_start.pop(e.step_key or "")
    stages = sum(end - begin for key, (begin, end) in steps.items() if key in STAGES)
    launch = first - start_time
    return {
        **{f"step {key}": end - begin for key, (begin, end) in sorted(steps.items())},
        "launch": launch,
        "model loads": loads,  # in-process runs initialise resources once, before the first step
        "stages": stages,
        "bookkeeping": max(last - first - stages - loads, 0.0),
        "exit": wall - launch - (last - first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[60_000], help="training-set sizes n")
    parser.add_argument("--batches", type=int, nargs="+", default=[1_000, 10_000], help="batch sizes m")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gmv_batch_wall"))
    args = parser.parse_args()
    cells: dict[tuple[int, int], float] = {}
    rows = []
    for n in args.sizes:
        work = args.work / str(n)
        prepare_home(n, work)
        env = environment(work)
        for m in args.batches:
            name = f"m{m}-{time.strftime('%Y%m%d%H%M%S')}"
            write_inbox_batch(work / "home" / "inbox", name, list(batch_images(m)))
            wall, start_time, done, peak = gmv_run(env)
            if f"new or changed batch(es): {name}" not in done.stderr:
                raise SystemExit(f"gmv run did not value only the new batch {name}:\n{done.stderr[-3000:]}")
            run_id = done.stdout.split("(run ")[1].split(")")[0]
            parts = run_parts(work / "home", run_id, start_time, wall)
            cells[(n, m)] = wall
            rows.append((n, m, wall, parts, peak))
            print(f"n = {n:,}, m = {m:,}: {wall:.2f} s wall ({1000 * wall / m:.2f} ms per image)", flush=True)
        again, _, done, peak = gmv_run(env)
        assert done.stdout.startswith("nothing new"), done.stderr[-2000:]
        rows.append((n, 0, again, None, peak))
    print("\n| n | m | wall s | ms / image | launch | model loads | stages | bookkeeping | exit | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, m, wall, parts, peak in rows:
        if parts is None:
            print(f"| {n:,} | nothing new | {wall:.2f} | | | | | | | {peak:.2f} |")
            continue
        shares = " | ".join(f"{parts[k]:.2f}" for k in ("launch", "model loads", "stages", "bookkeeping", "exit"))
        print(f"| {n:,} | {m:,} | {wall:.2f} | {1000 * wall / m:.2f} | {shares} | {peak:.2f} |")
    print("\nEach step's seconds (stages and checks) in the batch's run:\n")
    for n, m, _, parts, _ in rows:
        if parts is not None:
            steps = ", ".join(f"{k[5:]} {v:.2f}" for k, v in parts.items() if k.startswith("step "))
            print(f"- n = {n:,}, m = {m:,}: {steps}")

    def cell(n: int, m: int, per_image: bool = False) -> str:
        if (n, m) not in cells:
            return "nan"
        return f"{1000 * cells[(n, m)] / m:.3f}" if per_image else f"{cells[(n, m)]:.2f}"

    print(
        f"\nms_per_image_10k_60k={cell(60_000, 10_000, True)} s_1k_60k={cell(60_000, 1_000)} "
        f"s_100k_1m={cell(1_000_000, 100_000)}"
    )


if __name__ == "__main__":
    main()
