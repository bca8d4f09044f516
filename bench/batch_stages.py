"""A batch's stages, this checkout against another revision, interleaved: a speed change measured on one machine state.

    .venv/bin/python bench/batch_stages.py --against REV [--work /tmp/gmv_e2e] [--rounds 5]

This machine's speed moves by a quarter or more from one minute to the next, so two end-to-end runs an hour apart
cannot tell a 20% change from the weather. This script times a batch's embed, quality and match stages (as the
pipeline runs them, without Dagster: the learned similarity, HNSW search and the float64 re-score, the home's quality
metric, which for matched_detail reads each image's top matches) on the same 1,000 files and the same home, \
alternately with this checkout and with `--against`
(checked out in a temporary git worktree), each round in two fresh processes, and prints the median per stage.
The home and its inbox batches are `bench/end_to_end.py`'s (run it first). A process's one-off loads (torch, the
models, numba's cached loops) are outside the timed stages, as in the pipeline's metadata; one warm-up batch of 64
images precedes them. The timing code is this checkout's (`child`), run against the other tree's package: `--against`
must have the same functions it calls (6b8e205, the commit before issue 14's last changes, has). Last line:
`speedup=<old total / new total>`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("embed", "quality", "match")


def child(work: Path, batch: str) -> None:
    """Time the stages with whichever gmv_dagster is first on the path; print one JSON line (ms per image)."""
    import duckdb
    import numpy as np
    import torch

    from gmv_dagster.method.embedders import similarity_embedder
    from gmv_dagster.method.index import load_index
    from gmv_dagster.method.matching import IndexShard, MatchParams, search_shards
    from gmv_dagster.method.quality import Calibration, load_quality_model
    from gmv_dagster.method.search import HnswParams
    from gmv_dagster.sources.images import ImageSequence, load_images

    home = work / "home"
    uris = sorted(str(p) for p in (work / "inbox" / batch).glob("*.png"))
    embedder = similarity_embedder(str(next((home / "similarity").glob("*.pt")))).to(torch.device("cpu"))
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        row = con.execute("SELECT * FROM quality_calibration").pl().row(0, named=True)
    quality = load_quality_model(Calibration.from_row(row), "cpu")
    spec = json.loads((home / "index" / "train_index.json").read_text())
    index = load_index(home / "index" / "train_index.usearch", HnswParams(**spec["params"]), view=True)
    vectors = np.load(next((home / "vectors").glob("*.npy")), mmap_mode="r")
    shard = IndexShard(0, len(vectors), index, None, vectors)
    params = MatchParams(k=10, candidates=50, metric=spec["params"]["metric"])  # the pipeline's defaults
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:  # training uris in vector-row order
        train_uris = (
            con.execute(
                "SELECT t.uri FROM train_embeddings e JOIN training_images t ON t.id = e.id ORDER BY e.vector_row"
            )
            .pl()["uri"]
            .to_list()
        )

    def references(rows, dist):  # matched_detail's: of each image's top matches, those it takes, read when scored
        if not quality.references:
            return None
        return [ImageSequence([train_uris[i] for i in refs]) for refs in quality.reference_rows(rows, dist)]

    warm = embedder.embed(load_images(uris[:64]), "cpu", 256)
    quality.score(ImageSequence(uris[:64]), references=references(*search_shards(vectors, warm, params, [shard])))
    start = time.perf_counter()
    emb = embedder.embed(load_images(uris), "cpu", 256)
    embedded = time.perf_counter()
    rows, dist = search_shards(vectors, emb, params, [shard])
    matched = time.perf_counter()
    quality.score(ImageSequence(uris), references=references(rows, dist))
    scored = time.perf_counter()
    seconds = (embedded - start, scored - matched, matched - embedded)
    print(json.dumps({stage: 1000 * s / len(uris) for stage, s in zip(STAGES, seconds)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="the git revision to compare with (e.g. the commit before a change)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gmv_e2e"), help="bench/end_to_end.py's work folder")
    parser.add_argument("--batch", default="new-batch-1", help="an inbox batch of that work folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.work, args.batch)
        return
    if not args.against:
        parser.error("--against REV is required")
    if not (args.work / "home" / "gmv.duckdb").is_file():
        raise SystemExit(f"{args.work} has no home: run bench/end_to_end.py first")
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(old), args.against], check=True
        )
        try:
            trees = {"new": repo, "old": old}
            runs: dict[str, list[dict]] = {"new": [], "old": []}
            for r in range(args.rounds):
                for name in ("old", "new") if r % 2 else ("new", "old"):
                    env = {**os.environ, "PYTHONPATH": str(trees[name])}
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", "--work", str(args.work), "--batch", args.batch],
                        env=env,
                        cwd=trees[name],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    runs[name].append(json.loads(out.strip().splitlines()[-1]))
                    print(
                        f"round {r + 1} {name}: " + ", ".join(f"{s} {runs[name][-1][s]:.3f}" for s in STAGES),
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old)], check=False)
    print(f"\nmedian ms per generated image over {args.rounds} rounds ({args.batch}, 1,000 files):\n")
    print(f"| stage | {args.against} | this checkout | ratio |\n|---|---|---|---|")
    totals = {}
    for name in ("old", "new"):
        totals[name] = statistics.median(sum(run[s] for s in STAGES) for run in runs[name])
    for stage in STAGES:
        o, n = (statistics.median(run[stage] for run in runs[name]) for name in ("old", "new"))
        print(f"| {stage} | {o:.3f} | {n:.3f} | {o / n:.2f}x |")
    print(
        f"| **total** | **{totals['old']:.3f}** | **{totals['new']:.3f}** | **{totals['old'] / totals['new']:.2f}x** |"
    )
    print(f"speedup={totals['old'] / totals['new']:.2f}")


if __name__ == "__main__":
    main()
