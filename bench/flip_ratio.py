"""Flips where there is nothing to find: the demo's C1@10 upright and with flips, by flip_ratio.

The demo's generator (a VAE trained without flips) never emits mirror images, so on the demo `flips` can only cost:
a generated image taken as a mirror image is matched in the orientation its generator did not draw. C1@10 (the share
of each generated image's top 10 with its class, evaluation.criteria.agreement_per_image) is read from a demo home that
`gmv run` made, with the pipeline's stored vectors and embedder, by exact search. Each row's difference from upright
is paired (the same generated images), with a seeded bootstrap 95% interval over the generated images: C1@10 "does
not fall" at a ratio whose interval reaches 0 or above. The default ratio (method/matching.py) was chosen by
bench/attribution.py on other data; this checks it (held out for that choice).

    .venv/bin/gmv --home /tmp/demo run && .venv/bin/python bench/flip_ratio.py --home /tmp/demo
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmv_dagster.common.files import put_marked_section  # noqa: E402
from gmv_dagster.evaluation.criteria import agreement_per_image  # noqa: E402
from gmv_dagster.method.core import DEFAULTS, match, mirror  # noqa: E402
from gmv_dagster.method.matching import IndexShard, MatchParams, matches_table  # noqa: E402
from gmv_dagster.pipeline.vectors import embedding_matrix  # noqa: E402
from gmv_dagster.resources import EmbedderResource, GmvHome  # noqa: E402
from gmv_dagster.sources.images import load_images  # noqa: E402

RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
BOOTSTRAP = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a GMV_HOME that `gmv run` valued the demo in")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="of the bootstrap")
    parser.add_argument(
        "--markdown", type=Path, help="also write the table into this page (section bench/flip_ratio.py)"
    )
    args = parser.parse_args()
    home = GmvHome(path=str(args.home))
    train_rows, gen_rows = home.stored_rows("train_embeddings"), home.stored_rows("generated_embeddings")
    training, generated = home.stored_rows("training_images"), home.stored_rows("generated_images")
    train, gen = np.asarray(home.vector_store.train_vectors(train_rows)), embedding_matrix(gen_rows)
    uris = dict(zip(generated["id"], generated["uri"]))
    mirrored = (
        EmbedderResource().load_stored(home).embed([mirror(x) for x in load_images([uris[i] for i in gen_rows["id"]])])
    )
    keys = {
        "gen": generated.select("id", key="label"),
        "train": training.select("id", key="label"),
    }
    shards = [IndexShard(0, len(train))]

    def per_image(ratio: float | None) -> tuple[pl.DataFrame, float]:
        """Each generated image's share of its top k with its class; the share matched as mirror images."""
        params = MatchParams(k=args.k, index_mode="exact", flip_ratio=ratio or 1.0)
        timings: dict = {}
        idx, dist = match(train, gen, params, shards, timings=timings, mirrored=None if ratio is None else mirrored)
        top = matches_table(gen_rows["id"], train_rows["id"], idx, dist, args.k)
        shares = agreement_per_image(top, keys["gen"], keys["train"], args.k).sort("gen_id")
        return shares, timings.get("mirror_images", 0) / len(gen)

    upright, _ = per_image(None)
    draws = np.random.default_rng(args.seed).integers(0, upright.height, size=(BOOTSTRAP, upright.height))
    lines = [
        f"| matching | C1@{args.k} | difference from upright, 95% interval | matched as mirror images |",
        "|---|---|---|---|",
        f"| upright | {upright['share'].mean():.4f} | - | 0 |",
    ]
    verdicts = []
    for ratio in RATIOS:
        shares, turned = per_image(ratio)
        diff = (shares["share"] - upright["share"]).to_numpy()
        low, high = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
        lines.append(
            f"| flips, flip_ratio {ratio} | {shares['share'].mean():.4f} | "
            f"{diff.mean():+.4f} [{low:+.4f}, {high:+.4f}] | {turned:.3f} |"
        )
        if ratio == DEFAULTS.match.flip_ratio:
            verdicts.append(f"the default flip_ratio {ratio}: C1@{args.k} {'does not fall' if high >= 0 else 'FALLS'}")
    last = "; ".join(verdicts) or f"the default flip_ratio {DEFAULTS.match.flip_ratio} is not among {RATIOS}"
    print("\n".join(lines) + "\n\n" + last)
    if args.markdown:
        put_marked_section(
            args.markdown,
            "bench/flip_ratio.py",
            f"## Flips on the demo: C1@{args.k} by flip_ratio\n\n"
            f"Written by `python bench/flip_ratio.py --home <a demo home> --markdown {args.markdown}` on "
            f"{time.strftime('%Y-%m-%d')} ({len(gen)} generated images, {len(train)} training images, exact search, "
            f"{BOOTSTRAP} paired bootstrap draws). The demo's generator never mirrors: this is what flips cost where "
            "there is nothing to find.\n\n" + "\n".join(lines) + f"\n\n{last}",
        )


if __name__ == "__main__":
    main()
