"""NIQE quality: gmv_dagster.method.niqe against pyiqa's NIQE on Fashion-MNIST, same input, same parameters.

Pristine parameters are refit with the new code on 800 training images (its calibration of 1,000
reference images is timed: features of 800, scores of 200 and of 200 uniform-noise images, from the 28-px
images, preprocessing included). Then `--images` other training images (default 1,000), preprocessed as
the pipeline does (RGB, 192-px bicubic square, float32 in [0, 1]), are scored by pyiqa
(create_metric("niqe", pretrained_model_path=<our .mat>), as many torch threads as cores available) and then by
the new code as the pipeline runs it (batches on as many threads side by side, torch single-threaded in each:
method/quality._map_batches), first with tensor ops only (`kernels="torch"`, what a GPU runs), then with the
default compiled loops on the CPU (method/niqe_kernels.py); each once, in the pipeline's batches of 64, after a
warm-up batch. Last line: speedup_vs_pyiqa=<x> (wall time, default path) max_rel_diff=<y> (over the images).

On a machine shared with other busy processes the timings are not reliable: with two threads, OpenMP's
default spin-wait makes each parallel op cost up to a scheduler slice (measured 12 ms instead of 0.1 ms)
whenever another process holds a core; the first line prints the load average. OMP_WAIT_POLICY=PASSIVE
avoids that under load but costs the new code ~3 ms per image on an idle machine (many short ops).

    .venv/bin/python bench/quality.py [--images N] [--batch 64] [--threads T] [--profile]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: pyiqa gets our parameters file

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gmv_dagster.common.resample import resize
from gmv_dagster.method import niqe
from gmv_dagster.method.quality import _map_batches

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SIZE = 192  # the pipeline's NIQE input: 28-px images upsampled bicubic to 2 x 2 blocks of 96 px


def load_fashion_mnist(n: int) -> np.ndarray:
    if not FASHION_MNIST.is_file():
        sys.exit(f"error: {FASHION_MNIST} not found; install it with `apt-get install dataset-fashion-mnist`")
    with gzip.open(FASHION_MNIST) as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12))
    if int.from_bytes(data[:4], "big") != 2051 or count < n:
        sys.exit(f"error: {FASHION_MNIST} is not an IDX image file with at least {n} images")
    return np.frombuffer(data, np.uint8, count * rows * cols, offset=16).reshape(count, rows, cols)[:n]


def preprocess(images: np.ndarray) -> torch.Tensor:
    """(B, 3, 192, 192) float32 in [0, 1]: PIL's bicubic enlargement, as the pipeline's NIQE input makes it (its
    compiled copy, common/resample.py)."""
    arrays = [resize(np.asarray(Image.fromarray(i).convert("RGB")), SIZE, SIZE, Image.BICUBIC) for i in images]
    return (torch.from_numpy(np.stack(arrays).astype(np.float32)) / 255.0).permute(0, 3, 1, 2).contiguous()


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def pyiqa_batch(metric, part: torch.Tensor) -> np.ndarray:
    try:
        return metric(part).reshape(-1).double().numpy()
    except RuntimeError:  # pyiqa's batched pinv fails on a NaN (blank) image: score one by one
        return np.array([_pyiqa_one(metric, img) for img in part])


def _pyiqa_one(metric, img: torch.Tensor) -> float:
    try:
        return float(metric(img[None]).reshape(-1)[0])
    except RuntimeError:
        return float("nan")


def new_batch(scorer: niqe.NiqeScorer, part: torch.Tensor) -> np.ndarray:
    return scorer.score_rgb(part).numpy()


_THREAD_SCORERS: dict[int, threading.local] = {}


def new_on_threads(scorer: niqe.NiqeScorer, x: torch.Tensor, batch: int) -> np.ndarray:
    """x through the new code as the pipeline runs it (method/quality._map_batches): batches on threads side by
    side, torch single-threaded in each, one scorer (scratch buffers) per thread."""
    local = _THREAD_SCORERS.setdefault(id(scorer), threading.local())  # kept across calls: a warm-up warms them

    def score(images: list[torch.Tensor]) -> np.ndarray:
        if not hasattr(local, "scorer"):
            local.scorer = niqe.NiqeScorer(scorer.mu, scorer.cov, "cpu", scorer.block, kernels=scorer.kernels)
        return new_batch(local.scorer, torch.stack(images))

    return np.concatenate(_map_batches(x, batch, score, "cpu", None))


def new_scores(scorer: niqe.NiqeScorer, x: torch.Tensor, batch: int) -> np.ndarray:
    return np.concatenate([new_batch(scorer, part) for part in x.split(batch)])


def run_all(fn, arg, x: torch.Tensor, batch: int) -> tuple[np.ndarray, float, float]:
    """All of x through one implementation, batch by batch, after one warm-up batch: (scores, wall, cpu)."""
    fn(arg, x[:batch])
    return timed(lambda: np.concatenate([fn(arg, part) for part in x.split(batch)]))


def calibrate(reference: np.ndarray, seed: int = 0) -> dict:
    """What calibrate("niqe_refit") does, with the new code: fit on 80%, anchor on 20% clean and noise;
    also returns the seconds (wall) spent preprocessing (PIL upsampling to tensors), outside NIQE."""
    split = int(len(reference) * 0.8)
    anchors = reference[split:]
    noise = np.random.default_rng(seed).integers(0, 256, size=anchors.shape, dtype=np.uint8)
    prep = [0.0]

    def tensors(images: np.ndarray) -> torch.Tensor:
        x, wall, _ = timed(lambda: preprocess(images))
        prep[0] += wall
        return x

    with torch.inference_mode():
        fitter = niqe.NiqeScorer(torch.zeros(36), torch.eye(36), "cpu")  # for its tables and buffers
        feats = torch.cat(
            [
                fitter.features(niqe.y_channel(part))
                for i in range(0, split, 64)
                for part in tensors(reference[i : min(i + 64, split)]).split(fitter.chunk)
            ]
        )
        mu, cov = niqe.fit_pristine(feats.reshape(-1, 36).numpy())
        scorer = niqe.NiqeScorer(torch.from_numpy(mu), torch.from_numpy(cov), "cpu")
        scorer.workspace = fitter.workspace
        good = float(np.median(new_scores(scorer, tensors(anchors), 64)))  # pipeline's batches: 64
        bad = float(np.median(new_scores(scorer, tensors(noise), 64)))
    return {"mu": mu, "cov": cov, "good": good, "bad": bad, "preprocess": prep[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images scored by both (default 1000)")
    parser.add_argument("--batch", type=int, default=64, help="images per scoring batch (pipeline: 64)")
    parser.add_argument(
        "--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (default: the cores available)"
    )
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops of the new code")
    args = parser.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    data = load_fashion_mnist(1000 + args.images)
    reference, demo = data[:1000], data[1000:]
    print(
        f"torch {torch.__version__}, {threads} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, "
        f"load average {os.getloadavg()[0]:.1f}; {args.images} demo images, batches of {args.batch}"
    )

    if os.getloadavg()[0] > 0.5:
        print("note: the machine is not idle (load average above); timings will vary, see the docstring")
    calibrate(reference[:80])  # warm-up of the calibration path (first-call costs, not the fit)
    cal, cal_wall, cal_cpu = timed(lambda: calibrate(reference))
    print(
        f"calibration of 1000 reference images (new code: 800 fit + 200 clean + 200 noise, from 28 px): "
        f"{cal_wall:.2f} s wall ({cal['preprocess']:.2f} s of it preprocessing), {cal_cpu:.2f} s cpu; "
        f"anchors clean={cal['good']:.3f} noise={cal['bad']:.3f}"
    )

    import pyiqa

    with tempfile.TemporaryDirectory() as tmp:
        path = niqe.save_pristine(Path(tmp) / "niqe_refit.mat", cal["mu"], cal["cov"])
        metric = pyiqa.create_metric("niqe", pretrained_model_path=str(path), device="cpu")
        scorer = niqe.NiqeScorer.from_file(path, "cpu")
    x = preprocess(demo)
    with torch.inference_mode():
        ref, ref_wall, ref_cpu = run_all(pyiqa_batch, metric, x, args.batch)
        tensor_ops = niqe.NiqeScorer(scorer.mu, scorer.cov, "cpu", scorer.block, kernels="torch")
        new_on_threads(tensor_ops, x[: args.batch], args.batch)  # warm-up
        torch_new, torch_wall, torch_cpu = timed(lambda: new_on_threads(tensor_ops, x, args.batch))
        new_on_threads(scorer, x[: args.batch], args.batch)  # warm-up (and the kernels' compile on a first run)
        new, new_wall, new_cpu = timed(lambda: new_on_threads(scorer, x, args.batch))
    n = len(x)
    print(
        f"pyiqa NIQE: {ref_wall / n * 1e3:.2f} ms per image wall ({ref_cpu / n * 1e3:.2f} cpu), {threads} torch threads"
    )
    print(
        f"new NIQE, tensor ops:      {torch_wall / n * 1e3:.3f} ms per image wall ({torch_cpu / n * 1e3:.3f} cpu), "
        f"batches on {threads} threads side by side"
    )
    print(
        f"new NIQE, compiled loops:  {new_wall / n * 1e3:.3f} ms per image wall ({new_cpu / n * 1e3:.3f} cpu), "
        f"batches on {threads} threads side by side (the default on a CPU); max relative difference to tensor ops "
        f"{np.nanmax(np.abs(new - torch_new) / np.abs(torch_new)):.3g}"
    )
    both = np.isfinite(ref) & np.isfinite(new)
    if not np.array_equal(np.isfinite(ref), np.isfinite(new)):
        print(f"warning: {int((np.isfinite(ref) != np.isfinite(new)).sum())} images finite in only one of them")
    rel = np.abs(new[both] - ref[both]) / np.abs(ref[both])
    print(
        f"scores: {both.sum()} finite, median {np.median(ref[both]):.3f}; relative difference max "
        f"{rel.max():.3g}, median {np.median(rel):.3g}; cpu-time ratio {ref_cpu / new_cpu:.1f}; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    if args.profile:
        from torch.profiler import profile

        with profile() as prof, torch.inference_mode():
            new_scores(scorer, x[: args.batch], args.batch)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print(f"speedup_vs_pyiqa={ref_wall / new_wall:.1f} max_rel_diff={rel.max():.3g}")


if __name__ == "__main__":
    main()
