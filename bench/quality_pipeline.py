"""q as a user gets it: one image domain as folders of PNG files, valued by `gmv run`, q read back from DuckDB.

    .venv/bin/python bench/quality_pipeline.py [--domains photos-64 drawings-96] [--train 1500] [--copies 100]
                                               [--seed 3] [--work /tmp/gmv_quality_pipeline] [--markdown F]

bench/quality_domains.py scores images in memory with the method's functions; this writes what a user has (a
training folder, a folder of generated images) and runs the whole pipeline with its defaults (the learned
similarity trained on the folder, flips, `matched_detail` against the matches it finds). Generated: `--copies`
clean near-copies of seeded training images (evaluation.near_copies.near_copy, strengths 0.5 and 1), and each one
blurred (Gaussian sigma 2 px), noisy (sd 25) and saved as JPEG quality 15. Printed: per kind, median q and the share
under 0.1, and the AUC of clean against each degraded kind (ties half). The default seed is one neither benchmark
uses, so the images are ones no setting was chosen on. A line per domain:
`<domain>: blur_auc=<x> noise_auc=<y> jpeg_auc=<z> clean_below_0.1=<w>`.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_domains import load_domain, missing  # noqa: E402
from quality_domains import TRAIN_CAP  # noqa: E402

from gmv_dagster.common.files import put_marked_section  # noqa: E402
from gmv_dagster.evaluation.criteria import rank_auc  # noqa: E402
from gmv_dagster.evaluation.near_copies import near_copy  # noqa: E402
from gmv_dagster.pipeline.database import DATABASE  # noqa: E402

KINDS = ("clean", "blur", "noise", "jpeg")


def degraded(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "blur":
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(2)))
    if kind == "noise":
        return np.clip(np.rint(image + rng.normal(0, 25, image.shape)), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=15)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB" if image.ndim == 3 else "L"))
    return image


INTRO = (
    "## Quality through the pipeline: `gmv run` on folders of PNG files\n\n"
    "What a user gets: a domain's training images and its generated images written as folders of PNG files and "
    "valued by `gmv run` with every default (the learned similarity trained on the folder, flips, `matched_detail`), "
    "q read back from `quality_scores` (`bench/quality_pipeline.py`). Generated: clean near-copies of seeded "
    "training images, and each one blurred (sigma 2 px), noisy (sd 25) and saved as JPEG quality 15. The default "
    "seed, 3, is one no benchmark used: images no setting was chosen on."
)


def one_domain(domain: str, n_train: int, copies: int, seed: int, work: Path) -> list[str]:
    """Write the domain's folders, run `gmv run` on a fresh home, and return its table's lines."""
    work = work / f"{domain}-{n_train}-{copies}-{seed}"
    train_dir, gen_dir, home = work / "train", work / "generated", work / "home"
    shutil.rmtree(work, ignore_errors=True)  # a fresh home: `gmv run` values everything, as a new user's first run
    train = load_domain(domain, n_train, seed)
    train_dir.mkdir(parents=True, exist_ok=True)
    gen_dir.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(train):
        Image.fromarray(image).save(train_dir / f"t{i:05d}.png")
    rng = np.random.default_rng(seed)
    for j, row in enumerate(rng.choice(len(train), copies, replace=False)):
        clean = near_copy(train[row], (0.5, 1.0)[j % 2], rng)
        for kind in KINDS:
            Image.fromarray(degraded(clean, kind, rng)).save(gen_dir / f"{kind}{j:04d}.png")
    env = {**os.environ, "GMV_HOME": str(home), "GMV_TRAIN_SOURCE": str(train_dir)}
    env["GMV_GENERATED_SOURCE"] = str(gen_dir)
    start = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "gmv"), "run"], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"gmv run failed on {domain}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    with duckdb.connect(str(home / DATABASE), read_only=True) as con:
        rows = con.execute(
            "SELECT g.uri, s.q FROM quality_scores s JOIN generated_images g ON g.id = s.gen_id ORDER BY g.uri"
        ).fetchall()
    q = {kind: np.array([v for uri, v in rows if Path(uri).name.startswith(kind)]) for kind in KINDS}
    lines = [
        f"### {domain}\n",
        f"{len(train)} training and {sum(map(len, q.values()))} generated PNG files (seed {seed}), `gmv run` with its "
        f"defaults in {seconds:.0f} s on a fresh home.\n",
        "| kind | median q | q < 0.1 | AUC clean > kind |",
        "|---|---|---|---|",
    ]
    for kind in KINDS:
        auc = "" if kind == "clean" else f"{rank_auc(q['clean'], q[kind]):.3f}"
        lines.append(f"| {kind} | {np.median(q[kind]):.2f} | {np.mean(q[kind] < 0.1):.2f} | {auc} |")
    last = (
        f"{domain}: blur_auc={rank_auc(q['clean'], q['blur']):.3f} noise_auc={rank_auc(q['clean'], q['noise']):.3f} "
        f"jpeg_auc={rank_auc(q['clean'], q['jpeg']):.3f} clean_below_0.1={np.mean(q['clean'] < 0.1):.3f}"
    )
    lines.append(f"\n`{last}`\n")
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", default=["photos-64", "drawings-96"])
    parser.add_argument("--train", type=int, default=1500, help="training images per domain (fewer where it has fewer)")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gmv_quality_pipeline"))
    parser.add_argument("--markdown", type=Path, help="write the tables into this page (section quality-pipeline)")
    args = parser.parse_args()
    lines = [INTRO, ""]
    for domain in args.domains:
        if why := missing(domain):
            raise SystemExit(f"{domain}: {why}")
        n_train = min(args.train, TRAIN_CAP.get(domain, args.train))
        lines += one_domain(domain, n_train, args.copies, args.seed, args.work)
    command = f"python bench/quality_pipeline.py --domains {' '.join(args.domains)} --seed {args.seed}"
    lines.append(f"Written by `{command} --markdown {args.markdown}` on {time.strftime('%Y-%m-%d')}.")
    if args.markdown:
        put_marked_section(args.markdown, "bench/quality_pipeline.py", "\n".join(lines))


if __name__ == "__main__":
    main()
