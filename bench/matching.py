"""Matching benchmark: exact search against usearch HNSW (f32 / f16 / bf16 / i8) and FAISS IVF-PQ (the paper's engine).

    .venv/bin/pip install -e '.[bench]'     # FAISS, a benchmark-only dependency
    .venv/bin/python bench/matching.py --data fmnist              # the demo's embeddings: 60k x 1024 (pixels)
    .venv/bin/python bench/matching.py --data synthetic --n 1000000 --dim 128
    .venv/bin/python bench/matching.py --data home   # the learned 128-d vectors of bench/end_to_end.py's 60k home

For each engine: build seconds and vectors per second (every core), search milliseconds per generated
image for 1k and 10k queries at k = 10, recall@10 against exact search, and the peak resident memory of
a process that does only that engine's work (each engine runs in its own child process; in brackets what
the engine added to the data and imports it started with). Prints a markdown table and the machine it ran on.
`--rounds N` runs the engines N times in alternating order and prints each figure's median (recall too: a build
on every core is not the same graph twice): on a shared machine one run is one draw of its speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

K = 10
CANDIDATES = "50"  # K' the pipeline recalls and then re-scores exactly (matches.candidates; 50 by default)
ENGINES = ("exact", "hnsw_f32", "hnsw_f16", "hnsw_bf16", "hnsw_i8", "faiss_ivfpq")


def fmnist_embeddings(queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo's embedder (pixels, 32 px, L2-normalised) on all 60k training and `queries` test images."""
    import torch

    from gmv_dagster.method.embedders import make_embedder
    from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
    from gmv_dagster.sources.images import read_idx

    torch.set_num_threads(os.cpu_count() or 1)
    embedder = make_embedder("pixels")
    train = read_idx(DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz")
    test = read_idx(DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[:queries]
    return embedder.embed(list(train)), embedder.embed(list(test))


def home_embeddings(work: Path, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The training vectors of bench/end_to_end.py's home under `work` (the learned similarity, 128-d at 60k) and its
    model's embeddings of the first `queries` images of that run's inbox batches (other Fashion-MNIST test images,
    standing in for generations): what `matches` searches with after a new batch."""
    import torch

    from gmv_dagster.method.embedders import similarity_embedder
    from gmv_dagster.sources.images import load_images

    home = work / "home"
    vectors = sorted((home / "vectors").glob("*.npy"))
    models = sorted((home / "similarity").glob("*.pt"))
    if len(vectors) != 1 or len(models) != 1:
        raise SystemExit(f"{home} needs one training vector file and one similarity model: run bench/end_to_end.py")
    torch.set_num_threads(os.cpu_count() or 1)
    uris = sorted(str(p) for p in (work / "inbox").glob("*/*.png"))[:queries]
    embedder = similarity_embedder(str(models[0]))
    return np.load(vectors[0]), embedder.embed(load_images(uris))


def synthetic(n: int, dim: int, queries: int, clusters: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered Gaussian vectors (L2-normalised); queries drawn from the same mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), dtype=np.float32)
        for s in range(0, m, 100_000):  # bounded temporaries
            size = min(100_000, m - s)
            out[s : s + size] = centres[rng.integers(0, clusters, size)] + 0.35 * rng.normal(size=(size, dim))
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    return draw(n), draw(queries)


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM; getrusage would report the parent's after fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_engine(engine: str, train: np.ndarray, queries: np.ndarray, candidates: list[int]) -> dict:
    """Build once, search 1k and all queries; neighbour rows (m, K) for the recall, timings; then as the pipeline
    matches, for each K' in `candidates`."""
    from gmv_dagster.method.search import (
        HnswParams,
        build_hnsw,
        exact_topk,
        hnsw_search,
        rescore,
    )

    threads = os.cpu_count() or 1
    out: dict = {"engine": engine, "baseline_rss_mb": peak_rss_mb()}
    start = time.perf_counter()
    if engine == "exact":
        import torch

        torch.set_num_threads(threads)
        search = lambda q, k=K: exact_topk(train, q, k, "cos")[0]  # noqa: E731
    elif engine.startswith("hnsw_"):
        index = build_hnsw(train, HnswParams(metric="cos", dtype=engine.split("_")[1]), threads=0)
        search = lambda q, k=K: hnsw_search(index, q, k, threads=0)  # noqa: E731
    else:
        import faiss

        faiss.omp_set_num_threads(threads)
        dim = train.shape[1]
        nlist = int(4 * np.sqrt(len(train)))
        subquantizers = min(64, dim // 4)  # 4+ dimensions per 8-bit code
        if dim % subquantizers:
            raise ValueError(f"dimension {dim} is not a multiple of {subquantizers} PQ subquantizers")
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, subquantizers, 8, faiss.METRIC_INNER_PRODUCT)
        sample = train[np.random.default_rng(0).choice(len(train), min(len(train), 64 * nlist), replace=False)]
        index.train(np.ascontiguousarray(sample))
        index.add(np.ascontiguousarray(train))
        index.nprobe = 32
        out["params"] = f"nlist {nlist}, m {index.pq.M}, nprobe 32"
        search = lambda q, k=K: index.search(np.ascontiguousarray(q), k)[1]  # noqa: E731
    out["build_seconds"] = time.perf_counter() - start
    for m in dict.fromkeys((min(1000, len(queries)), len(queries))):  # 1k (or all, if fewer) and all
        start = time.perf_counter()
        found = search(queries[:m])
        out[f"ms_per_query_{m}"] = 1000 * (time.perf_counter() - start) / m
    out["found"] = np.asarray(found, dtype=np.int64).tolist()
    # As the pipeline matches: K' candidates, distances recomputed exactly in float64, the best k kept.
    first = queries[:1000]  # at most
    out["rescored"] = {}
    for k_prime in candidates:
        start = time.perf_counter()
        rows = np.asarray(search(first, k_prime), dtype=np.int64)
        searched = time.perf_counter()
        rows, _ = rescore(train, first, rows, "cos")
        done = time.perf_counter()
        out["rescored"][str(k_prime)] = {
            "search_ms": 1000 * (searched - start) / len(first),
            "rescore_ms": 1000 * (done - searched) / len(first),
            "found": rows[:, :K].tolist(),
        }
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def median_run(runs: list[dict]) -> dict:
    """One engine's rounds as one result: each time and memory figure the median over the rounds, the neighbours of
    every round (`found`, a list)."""
    median = lambda key, rows=runs: statistics.median(row[key] for row in rows)  # noqa: E731
    out = {key: median(key) for key in runs[0] if key.endswith(("_seconds", "_mb")) or key.startswith("ms_per_query_")}
    out.update(params=runs[0].get("params", ""), found=[row["found"] for row in runs], rescored={})
    for k_prime in runs[0]["rescored"]:
        parts = [row["rescored"][k_prime] for row in runs]
        out["rescored"][k_prime] = {
            "search_ms": median("search_ms", parts),
            "rescore_ms": median("rescore_ms", parts),
            "found": [part["found"] for part in parts],
        }
    return out


def child(args) -> None:
    data = np.load(args.arrays)
    result = run_engine(args.engine, data["train"], data["queries"], [int(c) for c in args.candidates.split(",")])
    Path(args.result).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["fmnist", "synthetic", "home"], default="fmnist")
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic training vectors")
    parser.add_argument("--dim", type=int, default=128, help="synthetic dimension")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--candidates", default=CANDIDATES, help="K' values to time the pipeline's re-scored search at")
    parser.add_argument("--rounds", type=int, default=1, help="run the engines this many times, alternating; medians")
    parser.add_argument("--work", default="/tmp/gmv_bench_matching")
    parser.add_argument(
        "--e2e-work", type=Path, default=Path("/tmp/gmv_e2e"), help="--data home: end_to_end.py's --work"
    )
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--arrays", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        return child(args)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.data == "fmnist":
        train, queries = fmnist_embeddings(args.queries)
    elif args.data == "home":
        train, queries = home_embeddings(args.e2e_work, args.queries)
    else:
        train, queries = synthetic(args.n, args.dim, args.queries)
    if not len(queries):
        raise SystemExit(
            f"no queries to search with ({args.data}): --queries must be at least 1, and --data home needs "
            "the inbox batches of bench/end_to_end.py"
        )
    arrays = work / "arrays.npz"
    np.savez(arrays, train=train, queries=queries)
    print(
        f"# matching: {args.data}, n = {len(train):,} x {train.shape[1]}, {len(queries):,} queries, k = {K}; "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), python {platform.python_version()}",
        flush=True,
    )
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    runs: dict[str, list[dict]] = {}
    engines = args.engines.split(",")
    for r in range(args.rounds):
        for engine in engines if r % 2 == 0 else engines[::-1]:  # alternating order: drift falls on both sides
            out = work / f"{engine}.json"
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--engine",
                    engine,
                    "--arrays",
                    str(arrays),
                    "--result",
                    str(out),
                    "--candidates",
                    args.candidates,
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
                print(f"{engine}: not run: {reason}", flush=True)
                continue
            runs.setdefault(engine, []).append(json.loads(out.read_text()))
            print(
                f"{engine}{f' (round {r + 1})' if args.rounds > 1 else ''}: done in "
                f"{runs[engine][-1]['build_seconds']:.1f} s build",
                flush=True,
            )
    results = {engine: median_run(engine_runs) for engine, engine_runs in runs.items()}
    exact = np.asarray(results["exact"]["found"][0]) if "exact" in results else None

    def recall(founds) -> float:
        """Median over the rounds (a build on every core is not the same graph twice)."""
        if exact is None:
            return float("nan")
        return statistics.median(
            float(np.mean([len(set(a) & set(e)) / K for a, e in zip(np.asarray(found), exact)])) for found in founds
        )

    m = len(queries)
    sizes = list(dict.fromkeys((m, min(1000, m))))
    label = lambda q: f"{q // 1000}k" if q % 1000 == 0 else f"{q:,}"  # noqa: E731
    print(
        "\n| engine | build s | vectors/s | "
        + " | ".join(f"ms / query ({label(q)})" for q in sizes)
        + " | recall@10 | peak RSS MB (engine) | params |"
    )
    print("|---|---|---|" + "---|" * len(sizes) + "---|---|---|")
    for engine, r in results.items():
        build = r["build_seconds"]
        rate = f"{len(train) / build:,.0f}" if engine != "exact" else "-"
        print(
            f"| {engine} | {build:.1f} | {rate} | "
            + " | ".join(f"{r[f'ms_per_query_{q}']:.3f}" for q in sizes)
            + f" | {recall(r['found']):.4f} | "
            f"{r['peak_rss_mb']:,.0f} ({r['peak_rss_mb'] - r['baseline_rss_mb']:+,.0f}) | "
            f"{r.get('params', '')} |"
        )
    print(
        f"\nAs the pipeline matches ({label(min(1000, m))} queries): K' candidates from the engine, "
        "re-scored exactly in float64, top 10 kept.\n"
    )
    print("| engine | K' | search ms / query | re-score ms / query | total ms / query | recall@10 |")
    print("|---|---|---|---|---|---|")
    for engine, r in results.items():
        for k_prime, t in r["rescored"].items():
            print(
                f"| {engine} | {k_prime} | {t['search_ms']:.3f} | {t['rescore_ms']:.3f} | "
                f"{t['search_ms'] + t['rescore_ms']:.3f} | {recall(t['found']):.4f} |"
            )


if __name__ == "__main__":
    main()
