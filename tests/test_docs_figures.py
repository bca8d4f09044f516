"""Figures the docs repeat are the ones their source prints (one source per number).

Sources: docs/RESULTS.md's tables (the part `gmv report` writes, and the benchmarks' marked sections), the tables of
docs/PERFORMANCE.md and, for the asset graph, the code location itself. A quote is compared with its source rounded
half up to the digits the quote shows (0.0219 quoted as 0.022, 0.786 as 79%); a template's `{}` marks a quoted number,
and each template must occur once in its page (spaces in it match any run of spaces and line breaks).
"""

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

import pytest

from gmv_dagster.common.files import marked_sections

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "README.md": ROOT / "README.md",
    "RESULTS.md": ROOT / "docs" / "RESULTS.md",
    "PERFORMANCE.md": ROOT / "docs" / "PERFORMANCE.md",
    "DESIGN.md": ROOT / "docs" / "DESIGN.md",
}


@cache
def page(name: str) -> str:
    return PAGES[name].read_text()


def section(text: str, name: str) -> str:
    found = [block for block in marked_sections(text) if block.startswith(f"<!-- begin {name} -->")]
    assert len(found) == 1, f"docs/RESULTS.md has no section {name}"
    return found[0]


@cache
def report() -> str:
    """docs/RESULTS.md as `gmv report` writes it: without the benchmarks' sections."""
    text = page("RESULTS.md")
    for block in marked_sections(text):
        text = text.replace(block, "")
    return text


def table(text: str, header: str, after: str | None = None) -> list[dict[str, str]]:
    """The markdown table whose header line starts with `header` (the first after the line `after`), as one dict
    per row; a repeated column name gets " (2)"; cells lose their bold marks."""
    if after is not None:
        assert text.count(after) == 1, f"{after!r} should occur once"
        text = text[text.index(after) :]
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    assert starts, f"no table with header {header!r}"
    rows = []
    for line in lines[starts[0] :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")])
    names: list[str] = []
    for name in rows[0]:
        names.append(name if name not in names else f"{name} (2)")
    return [dict(zip(names, row)) for row in rows[2:]]


def row(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    found = [r for r in rows if all(r[k].strip("`") == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} rows match {match}"
    return found[0]


def number(cell: str) -> str:
    return re.search(r"-?\d[\d,]*(\.\d+)?", cell).group(0).replace(",", "")


def like(source, quote: str) -> str:
    """`source` (a number, or its text) rounded half up to the decimals of `quote`, in `quote`'s sign style."""
    places = len(quote.split(".")[1]) if "." in quote else 0
    value = Decimal(number(source) if isinstance(source, str) else source)
    text = str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
    return "+" + text if quote.startswith("+") and not text.startswith("-") else text


def pct(source: str) -> Decimal:
    return Decimal(number(source)) * 100


def quoted(name: str, template: str) -> list[str]:
    """The numbers at the `{}` of `template` where it occurs (once) in the page `name`."""
    # a space matches any run of spaces and line breaks, a blockquote's "> " at a line's start included
    pieces = [re.sub(r"(\\ )+", r"\\s+(?:>\\s+)?", re.escape(piece)) for piece in template.split("{}")]
    pattern = r"([-+]?\d[\d,]*(?:\.\d+)?)".join(pieces)
    found = re.findall(pattern, page(name))
    assert len(found) == 1, f"{name}: {len(found)} occurrences of {template!r}"
    return [found[0]] if isinstance(found[0], str) else list(found[0])


# docs/RESULTS.md: the report's tables (`gmv report`) and the benchmarks' sections
def headline(method, column):
    return row(table(report(), "| method | C1@10 |"), method=method)[column]


def c1(method, k="k=10"):
    return row(table(report(), "| method | k=1 |"), method=method)[k]


def c2(method, attribute):
    return row(table(report(), "| method |", after="## C2 identical attributes: C2@10"), method=method)[attribute]


def reasonableness(method):
    return row(table(report(), "| method | source in top-1 |"), method=method)["source in top-1"]


def c3(method, column):
    return row(table(report(), "| method | AUC (OOD valued lower) |"), method=method)[column]


def c4(method, *stages):
    rows = table(report(), "| method | match | credit |")
    return sum(Decimal(row(rows, method=method)[stage]) for stage in stages)


def fidelity(method, arm, metric="distance_to_removed_gain"):
    return row(table(report(), "| method |", after=f"## fidelity: {metric}"), method=method)[arm]


def displacement() -> list[Decimal]:
    rows = table(report(), "| method |", after="## fidelity: displacement")
    return [Decimal(v) for r in rows for k, v in r.items() if k != "method" and v]


def diversity(method, column):
    return row(table(report(), "| method | coverage (share with value > 0) |"), method=method)[column]


def spearman(method, column):
    return row(table(report(), "| method |", after="## consistency: spearman"), method=method)[column]


def lds(method, setting="against the seeds' mean"):
    return row(table(report(), "| method | against the seeds' mean"), method=method)[setting]


def lds_ceiling(family, column, S):
    rows = table(section(page("RESULTS.md"), f"bench/lds_ceiling.py-{family}"), "| S |")
    return row(rows, S=str(S))[column]


def lds_agreement():
    """r of the report's seed-noise ceiling, from its note."""
    notes = [n for n in report().splitlines() if n.startswith("- ceiling: seed noise:")]
    assert len(notes) == 1, notes
    return re.search(r"r = (-?\d\.\d+)", notes[0]).group(1)


def lds_smallest_s():
    found = re.findall(
        r"Smallest S with gmv's interval within \+-0\.01: (\d+)",
        section(page("RESULTS.md"), "bench/lds_ceiling.py-vae"),
    )
    assert len(found) == 1
    return found[0]


def lds_sweep(k, factor, column):
    rows = table(section(page("RESULTS.md"), "bench/lds_ceiling.py-vae"), "| k | tau factor |")
    return row(rows, k=str(k), **{"tau factor": factor})[column]


def attribution(domain, embedder, column="near-copy top-1", flips="off"):
    rows = table(section(page("RESULTS.md"), "bench/attribution.py"), "| domain | training images |")
    return row(rows, domain=domain, embedder=embedder, flips=flips, **{"re-rank": "none"})[column]


def demo_generator(samples, column="C1@10"):
    rows = table(section(page("RESULTS.md"), "bench/demo_generator.py"), "| samples |")
    return row(rows, samples=samples)[column]


def coverage(images, embedder, k, generations):
    rows = table(section(page("RESULTS.md"), "bench/c3_coverage.py"), "| clean training images |")
    found = row(rows, **{"clean training images": images, "embedder": embedder, "k": k})
    return found[f"coverage after {generations} generations"]


OUTSIDE_TUNING = ("validation", "held out")  # quality_domains.py's splits other than the tuning domains


def quality_rows(split: str | tuple[str, ...], metric: str) -> list[dict[str, str]]:
    rows = table(section(page("RESULTS.md"), "bench/quality_domains.py"), "| domain | split | metric |")
    return [r for r in rows if r["split"].startswith(split) and r["metric"] == metric]


def auc_range(split, metric, *columns) -> list[str]:
    values = [Decimal(r[c]) for r in quality_rows(split, metric) for c in columns]
    assert values, (split, metric, columns)
    return [str(min(values)), str(max(values))]


# docs/PERFORMANCE.md's tables
def end_to_end(day, run, column="median total"):
    return row(table(page("PERFORMANCE.md"), f"| run ({day}) |"), **{f"run ({day})": run})[column]


def held_out_column(column, flips="off"):
    rows = table(section(page("RESULTS.md"), "bench/attribution.py"), "| domain | training images |")
    return [Decimal(r[column]) for r in rows if r["split"] == "held out" and r["flips"] == flips]


def held_out_mirrors(flips):
    return held_out_column("mirror top-1", flips)


FLIPS_RUN = "matched_detail + flips (the default since)"


def flip_ratio(matching, column):
    rows = table(section(page("RESULTS.md"), "bench/flip_ratio.py"), "| matching |")
    return row(rows, matching=matching)[column]


def flip_interval(matching):
    """(difference, low, high) of a flips row's paired difference from upright."""
    return re.findall(r"[-+]\d\.\d+", flip_ratio(matching, "difference from upright, 95% interval"))


def later_batch(step, column):
    rows = table(page("PERFORMANCE.md"), "| step |", after="### A later batch as n grows")
    return next(r[column] for r in rows if r["step"].startswith(step))


def vector_store(step, column):
    return row(table(page("PERFORMANCE.md"), "| step | before (above) s | now s |"), step=step)[column]


def batch_wall(m, column, n="60,000"):
    rows = table(page("PERFORMANCE.md"), "| n | m | wall s |", after="## What a user waits for")
    return row(rows, n=n, m=m)[column]


def niqe_today() -> list[dict[str, str]]:
    rows = table(page("PERFORMANCE.md"), "| run | pyiqa ms/image |")
    first = next(i for i, r in enumerate(rows) if "2026-12-02" in r["run"])
    return rows[first:]


def span(rows, column) -> list[str]:
    values = [Decimal(r[column]) for r in rows]
    return [str(min(values)), str(max(values))]


def niqe_block(images, block, column):
    rows = table(page("PERFORMANCE.md"), "| images | NIQE block px |")
    return row(rows, images=images, **{"NIQE block px": block})[column]


Sources = Callable[[], list]
CLAIMS: list[tuple[str, str, Sources]] = [
    (
        "PERFORMANCE.md",
        "the stages' {} ms per image becomes {} ms",
        lambda: [end_to_end("2026-12-07", "matched_detail"), end_to_end("2026-12-07", FLIPS_RUN)],
    ),
    (
        "PERFORMANCE.md",
        "and searches it too: {} + {} ms more per generated image, the marginal total {}x",
        lambda: [
            end_to_end("2026-12-07", FLIPS_RUN, "mirror embed"),
            Decimal(end_to_end("2026-12-07", FLIPS_RUN, "match"))
            - Decimal(end_to_end("2026-12-07", "matched_detail", "match")),
            Decimal(end_to_end("2026-12-07", FLIPS_RUN)) / Decimal(end_to_end("2026-12-07", "matched_detail")),
        ],
    ),
    # flips on the attribution benchmark's domains, quoted in DESIGN's defaults
    (
        "DESIGN.md",
        "mirror images of training images found their source at top-1 {} (Fashion-MNIST) and {} (colour crops), with "
        "flips {} and {}, at a near-copy top-1 cost of {} and {}",
        lambda: [
            attribution("fmnist", "similarity", "mirror top-1"),
            attribution("crops", "similarity", "mirror top-1"),
            attribution("fmnist", "similarity", "mirror top-1", flips="on (0.8)"),
            attribution("crops", "similarity", "mirror top-1", flips="on (0.8)"),
            *(
                Decimal(attribution(d, "similarity")) - Decimal(attribution(d, "similarity", flips="on (0.8)"))
                for d in ("fmnist", "crops")
            ),
        ],
    ),
    (
        "DESIGN.md",
        "On its held-out domains mirror top-1 goes from {}-{} to {}-{}",
        lambda: [
            *(f(held_out_mirrors("off")) for f in (min, max)),
            *(f(held_out_mirrors("on (0.8)")) for f in (min, max)),
        ],
    ),
    (
        "RESULTS.md",
        "The similarity's training: tuning {} to {} s, held-out {} to {} s",
        lambda: [
            attribution("fmnist", "similarity", "similarity training s"),
            attribution("crops", "similarity", "similarity training s"),
            *(f(held_out_column("similarity training s")) for f in (min, max)),
        ],
    ),
    # README, "Measured on the demo" and "What the demo shows": docs/RESULTS.md's report
    (
        "README.md",
        "source top-1 {} (pixels {}), C1@10 {} ({}), LDS {} ({})",
        lambda: [
            reasonableness("gmv"),
            reasonableness("gmv_pixels"),
            c1("gmv"),
            c1("gmv_pixels"),
            lds("gmv"),
            lds("gmv_pixels"),
        ],
    ),
    (
        "README.md",
        "shares the generated image's class {}% of the time at k = 10 (pixels {}%, real test images {}%, random {}%, "
        "TracIn {}%)",
        lambda: [
            pct(c1("gmv")),
            pct(c1("gmv_pixels")),
            pct(demo_generator("real test images (1,000, the reference)")),
            pct(c1("random")),
            pct(c1("tracin")),
        ],
    ),
    (
        "README.md",
        "and attributes {}% (random {}%, TracIn {}%)",
        lambda: [pct(headline(m, "C2@10 (mean)")) for m in ("gmv", "random", "tracin")],
    ),
    (
        "README.md",
        "the top-1 contributor every time ({}; pixels {}; TracIn {}%)",
        lambda: [reasonableness("gmv"), reasonableness("gmv_pixels"), pct(reasonableness("tracin"))],
    ),
    (
        "README.md",
        "brightness agrees only {}% of the time with pixels; the learned similarity {}%, L2 re-ranking {}%",
        lambda: [pct(c2(m, "derived:brightness")) for m in ("gmv_pixels", "gmv", "gmv_rerank_l2")],
    ),
    (
        "README.md",
        "on the 10 classes {} for GMValuator, {} on pixels, {} for TracIn, {} for random",
        lambda: [headline(m, "group LDS (classes)") for m in ("gmv", "gmv_pixels", "tracin", "random")],
    ),
    (
        "README.md",
        "against their mean): {} for GMValuator, {} on pixels, {} for TracIn, {} for random",
        lambda: [lds(m) for m in ("gmv", "gmv_pixels", "tracin", "random")],
    ),
    (
        "README.md",
        "agree only r = {} per sample, which caps LDS at {} (the report's",
        lambda: [lds_agreement(), lds("ceiling: seed noise")],
    ),
    (
        "README.md",
        "does about as well: {} at S = {}, GMValuator {}). S = {} brings",
        lambda: [lds_ceiling("vae", "own class", 64), "64", lds_ceiling("vae", "gmv", 64), lds_smallest_s()],
    ),
    (
        "README.md",
        "(k = 500, temperature x16: {}) without losing",
        lambda: [lds_sweep(500, "16", "LDS")],
    ),
    (
        "README.md",
        "keeps {} of its credit on its source ({} with the defaults)",
        lambda: [
            lds_sweep(500, "16", "near-copy: credit on its source"),
            lds_sweep(10, "1", "near-copy: credit on its source"),
        ],
    ),
    (
        "README.md",
        "The demo DDPM: {} (16 retrains; random {})",
        lambda: [lds_ceiling("diffusion", "gmv", 16), lds_ceiling("diffusion", "random", 16)],
    ),
    (
        "README.md",
        "At the pipeline's k = 10, {}% of the training images are never matched (coverage {})",
        lambda: [
            (1 - Decimal(diversity("gmv", "coverage (share with value > 0)"))) * 100,
            diversity("gmv", "coverage (share with value > 0)"),
        ],
    ),
    (
        "README.md",
        "barely move coverage ({} after 5,000 generations",
        lambda: [coverage("20,000", "similarity", "10", "5,000")],
    ),
    (
        "README.md",
        "coverage {}, and GMValuator values OOD images lower with AUC {} (bound {}; {} with an L2 re-rank; TracIn {}), "
        "giving them {}% of the value while they are {}% of the training set",
        lambda: [
            c3("gmv", "coverage of clean images (value > 0)"),
            c3("gmv", "AUC (OOD valued lower)"),
            c3("gmv", "AUC bound (1 + coverage) / 2"),
            c3("gmv_rerank_l2", "AUC (OOD valued lower)"),
            c3("tracin", "AUC (OOD valued lower)"),
            pct(c3("gmv", "OOD share of total value")),
            pct(c3("uniform", "OOD share of total value")),
        ],
    ),
    ("README.md", "Without quality the AUC is {}", lambda: [c3("gmv_q1", "AUC (OOD valued lower)")]),
    (
        "README.md",
        "**C4**: {} s per generated image end to end",
        lambda: [c4("gmv", "end to end")],
    ),
    (
        "README.md",
        "building the index are {} ms of it; {} s for embedding the generated images, quality, match and credit; "
        "TracIn {} s",
        lambda: [
            c4("gmv", "embed_train", "index") * 1000,
            c4("gmv", "embed_generated", "quality", "match", "credit"),
            c4("tracin", "end to end"),
        ],
    ),
    (
        "README.md",
        "images (+{} cosine), a random 10% hardly (+{}), the bottom 10% moves them closer ({})",
        lambda: [fidelity("gmv", arm) for arm in ("top 10%", "random 10%", "bottom 10%")],
    ),
    (
        "README.md",
        "TracIn does not separate the arms (+{} / +{} / +{})",
        lambda: [fidelity("tracin", arm) for arm in ("top 10%", "random 10%", "bottom 10%")],
    ),
    ("README.md", "moves every generation ({} to {} cosine)", lambda: [min(displacement()), max(displacement())]),
    (
        "README.md",
        "HNSW (bf16) vs exact {}, bf16 vs f32 {}; across generation seeds {} (pixels {}) and across generator "
        "families {}",
        lambda: [
            spearman("gmv", "ANN (HNSW bf16) vs exact"),
            spearman("gmv", "HNSW bf16 vs f32"),
            spearman("gmv", "generation seed"),
            spearman("gmv_pixels", "generation seed"),
            spearman("gmv", "generator family (vae vs diffusion)"),
        ],
    ),
    ("README.md", "TracIn is more stable across seeds ({})", lambda: [spearman("tracin", "generation seed")]),
    (
        "README.md",
        "(Gini {}, {}% of images valued); TracIn spreads it (Gini {})",
        lambda: [
            diversity("gmv", "Gini"),
            pct(diversity("gmv", "coverage (share with value > 0)")),
            diversity("tracin", "Gini"),
        ],
    ),
    # the benchmarks' sections of docs/RESULTS.md, quoted in README and DESIGN
    (
        "README.md",
        "Near-copy top-1 (`bench/attribution.py`, docs/RESULTS.md): Fashion-MNIST {} (pixels {}), colour crops {} "
        "(pixels {})",
        lambda: [
            attribution("fmnist", "similarity"),
            attribution("fmnist", "pixels"),
            attribution("crops", "similarity"),
            attribution("crops", "pixels"),
        ],
    ),
    (
        "DESIGN.md",
        "near-copy top-1 {} on Fashion-MNIST and {} on colour photo crops (pixels {} / {}, EfficientNet-Lite0 {} / {};",
        lambda: [
            attribution("fmnist", "similarity"),
            attribution("crops", "similarity"),
            attribution("fmnist", "pixels"),
            attribution("crops", "pixels"),
            attribution("fmnist", "efficientnet_lite0"),
            attribution("crops", "efficientnet_lite0"),
        ],
    ),
    (
        "DESIGN.md",
        "C1@10 of the samples {} with pixels against {} from N(0, I), real test images {}, at the same training cost; "
        "coverage is not what it buys ({} vs {} at 1,000 samples)",
        lambda: [
            demo_generator("VAE, prior 10 Gaussians per class"),
            demo_generator("VAE, prior N(0, I)"),
            demo_generator("real test images (1,000, the reference)"),
            demo_generator("VAE, prior 10 Gaussians per class", "coverage after 1,000"),
            demo_generator("VAE, prior N(0, I)", "coverage after 1,000"),
        ],
    ),
    (
        "README.md",
        "C1@10 {} against {} for real test images",
        lambda: [demo_generator("VAE, prior N(0, I)"), demo_generator("real test images (1,000, the reference)")],
    ),
    (
        "README.md",
        "they reach {} with pixels at the same training cost",
        lambda: [demo_generator("VAE, prior 10 Gaussians per class")],
    ),
    (
        "README.md",
        "blur sigma >= 2 AUC {} to {} (NIQE {} to {}), noise sd 25 {} to {} (NIQE {} to {}), JPEG-15 {} to {} "
        "(NIQE {} to {})",
        lambda: [
            *auc_range(OUTSIDE_TUNING, "matched_detail", "blur 2", "blur 3"),
            *auc_range(OUTSIDE_TUNING, "niqe_refit", "blur 2", "blur 3"),
            *auc_range(OUTSIDE_TUNING, "matched_detail", "noise 25"),
            *auc_range(OUTSIDE_TUNING, "niqe_refit", "noise 25"),
            *auc_range(OUTSIDE_TUNING, "matched_detail", "JPEG 15"),
            *auc_range(OUTSIDE_TUNING, "niqe_refit", "JPEG 15"),
        ],
    ),
    (
        "DESIGN.md",
        "AUC of blur sigma 2 {} to {}, noise sd 25 {} to {}, JPEG-15 {} to {}, where NIQE refit on the training "
        "images ranked blur sigma 2 at {} to {} and JPEG-15 at {} to {}",
        lambda: [
            *auc_range("tuning", "matched_detail", "blur 2"),
            *auc_range("tuning", "matched_detail", "noise 25"),
            *auc_range("tuning", "matched_detail", "JPEG 15"),
            *auc_range("tuning", "niqe_refit", "blur 2"),
            *auc_range("tuning", "niqe_refit", "JPEG 15"),
        ],
    ),
    (
        "DESIGN.md",
        "AUC of blur sigma 2 and 3 on the four photo domains {} to {}",
        lambda: [
            f(
                Decimal(r[c])
                for r in quality_rows("", "niqe_refit")
                if "(photo" in r["domain"]
                for c in ("blur 2", "blur 3")
            )
            for f in (min, max)
        ],
    ),
    # docs/PERFORMANCE.md's tables, quoted in README and in PERFORMANCE's own summary of its targets
    (
        "README.md",
        "**{} ms per generated image** with the defaults (`matched_detail`, `method.flips`; {} ms matched upright "
        "with the quality default `matched_detail`",
        lambda: [end_to_end("2026-12-07", FLIPS_RUN), end_to_end("2026-12-07", "matched_detail")],
    ),
    (
        "README.md",
        "2026-12-07; {} ms on 2026-12-02 with NIQE",
        lambda: [end_to_end("2026-12-02", "this change")],
    ),
    (
        "README.md",
        "the whole pipeline at 1M training images: {} min and {} GB",
        lambda: [Decimal(vector_store("whole run, wall", "now s")) / 60, vector_store("whole run, wall", "now")],
    ),
    (
        "README.md",
        "a Dagster run of {} s wall, of which the same four stages took {} s ({} s at 60k)",
        lambda: [
            later_batch("wall", "1M s"),
            later_batch("its own stages", "1M s"),
            later_batch("its own stages", "n = 60k s"),
        ],
    ),
    (
        "README.md",
        "a new batch costs {} ms per generated image at n = 60,000 ({} upright",
        lambda: [end_to_end("2026-12-07", FLIPS_RUN), end_to_end("2026-12-07", "matched_detail")],
    ),
    (
        "README.md",
        "NIQE's compiled fits; {} ms (2026-12-02, the code before it {} ms in the same hour)",
        lambda: [end_to_end("2026-12-02", "this change"), end_to_end("2026-12-02", "93e6f13 (before: f16 index)")],
    ),
    (
        "README.md",
        "{} ms (2026-12-07) with `matched_detail`",
        lambda: [end_to_end("2026-12-07", "matched_detail")],
    ),
    (
        "PERFORMANCE.md",
        "**nothing new met: {} s** at n = 60k, **{} s** at 1M (peak {} / {} GB); **100,000 at 1M met: {} ms** per "
        "image ({} s, peak {} GB)",
        lambda: [
            batch_wall("nothing new", "wall s"),
            batch_wall("nothing new", "wall s", "1,000,000"),
            batch_wall("nothing new", "peak RSS GB"),
            batch_wall("nothing new", "peak RSS GB", "1,000,000"),
            batch_wall("100,000", "ms / image", "1,000,000"),
            batch_wall("100,000", "wall s", "1,000,000"),
            batch_wall("100,000", "peak RSS GB", "1,000,000"),
        ],
    ),
    (
        "README.md",
        "without launching a run ({} s at 60k training images, {} s at 1M); new or changed batches run",
        lambda: [batch_wall("nothing new", "wall s"), batch_wall("nothing new", "wall s", "1,000,000")],
    ),
    (
        "README.md",
        "a batch of 100,000 against a 1M home: {} ms per image wall",
        lambda: [batch_wall("100,000", "ms / image", "1,000,000")],
    ),
    (
        "PERFORMANCE.md",
        "- At n = 1M, m = 100,000: {} ms per image wall, peak RSS {} GB",
        lambda: [batch_wall("100,000", "ms / image", "1,000,000"), batch_wall("100,000", "peak RSS GB", "1,000,000")],
    ),
    (
        "PERFORMANCE.md",
        "With nothing new, `gmv run` answers in {} s at 1M ({} s at 60k)",
        lambda: [batch_wall("nothing new", "wall s", "1,000,000"), batch_wall("nothing new", "wall s")],
    ),
    (
        "PERFORMANCE.md",
        "1,000 at 60k **{} s**, 10,000 **{} ms** per image ({} s)",
        lambda: [batch_wall("1,000", "wall s"), batch_wall("10,000", "ms / image"), batch_wall("10,000", "wall s")],
    ),
    (
        "PERFORMANCE.md",
        "the steps' own seconds are {} s / {} s of it, the launch (imports of torch and Dagster, the definitions) {} s",
        lambda: [batch_wall("1,000", "stages"), batch_wall("10,000", "stages"), batch_wall("1,000", "launch")],
    ),
    (
        "PERFORMANCE.md",
        "**met: {} ms** with `matched_detail` (2026-12-07",
        lambda: [end_to_end("2026-12-07", "matched_detail")],
    ),
    (
        "PERFORMANCE.md",
        "with NIQE **{} and {} ms** (2026-12-02",
        lambda: [end_to_end("2026-12-02", "this change"), end_to_end("2026-12-02", "this change, again")],
    ),
    (
        "PERFORMANCE.md",
        "the code before, in the same hour, {} ms ({}x)",
        lambda: [
            end_to_end("2026-12-02", "93e6f13 (before: f16 index)"),
            Decimal(end_to_end("2026-12-02", "93e6f13 (before: f16 index)"))
            / Decimal(end_to_end("2026-12-02", "this change")),
        ],
    ),
    (
        "PERFORMANCE.md",
        "**met: {} s** on 2026-12-07",
        lambda: [end_to_end("2026-12-07", "matched_detail", "one-off")],
    ),
    (
        "PERFORMANCE.md",
        "on 2026-12-07 ({} + {}) s / 1,000 = {} ms and **{} ms**",
        lambda: [
            end_to_end("2026-12-07", "matched_detail", "one-off"),
            end_to_end("2026-12-07", "matched_detail"),
            Decimal(number(end_to_end("2026-12-07", "matched_detail", "one-off")))
            + Decimal(end_to_end("2026-12-07", "matched_detail")) / 1000,
            end_to_end("2026-12-07", "matched_detail"),
        ],
    ),
    (
        "PERFORMANCE.md",
        "quality **{} ms** per generated image (median), the marginal total **{} ms** ({} ms with NIQE on 2026-12-02)",
        lambda: [
            end_to_end("2026-12-07", "matched_detail", "quality"),
            end_to_end("2026-12-07", "matched_detail"),
            end_to_end("2026-12-02", "this change"),
        ],
    ),
    (
        "PERFORMANCE.md",
        "**{} s at 60k, {} s at 250k, {} s at 1M**",
        lambda: [later_batch("its own stages", c) for c in ("n = 60k s", "250k s", "1M s")],
    ),
    (
        "PERFORMANCE.md",
        "the whole batch's wall **{} / {} / {} s**",
        lambda: [later_batch("wall", c) for c in ("n = 60k s", "250k s", "1M s")],
    ),
    (
        "PERFORMANCE.md",
        "learned 128-d default: **{} GB, {} s**",
        lambda: [vector_store("whole run, wall", "now"), vector_store("whole run, wall", "now s")],
    ),
    (
        "PERFORMANCE.md",
        "**{}x to {}x at two threads** on 2026-12-02 ({} to {} ms against {} to {} ms per image",
        lambda: [
            *span(niqe_today(), "speedup"),
            *span(niqe_today(), "new ms/image"),
            *span(niqe_today(), "pyiqa ms/image"),
        ],
    ),
    (
        "DESIGN.md",
        "48-px blocks score 28-px grey images {}x faster with nearly equal sigma-1 blur and noise AUCs, but a sigma-3 "
        "blur keeps median q {} ({} at 96) and 64-px colour blur AUC falls from {} to {}",
        lambda: [
            Decimal(niqe_block("Fashion-MNIST, 28 px grey", "96", "scoring ms per image"))
            / Decimal(niqe_block("Fashion-MNIST, 28 px grey", "48", "scoring ms per image")),
            niqe_block("Fashion-MNIST, 28 px grey", "48", "median q blur sigma 3"),
            niqe_block("Fashion-MNIST, 28 px grey", "96", "median q blur sigma 3"),
            niqe_block("colour photo crops, 64 px", "96", "AUC blur sigma 1"),
            niqe_block("colour photo crops, 64 px", "48", "AUC blur sigma 1"),
        ],
    ),
    (
        "DESIGN.md",
        "builds the index {}x faster than 1,024-d pixels at 60k ({} against {} s",
        lambda: [
            Decimal(quoted("PERFORMANCE.md", "(embed 4.74, index {} = 80%")[0])
            / Decimal(
                row(
                    table(page("PERFORMANCE.md"), "| stage | seconds | share |"),
                    stage="build the index (HNSW, 128-d, one thread)",
                )["seconds"]
            ),
            row(
                table(page("PERFORMANCE.md"), "| stage | seconds | share |"),
                stage="build the index (HNSW, 128-d, one thread)",
            )["seconds"],
            quoted("PERFORMANCE.md", "(embed 4.74, index {} = 80%")[0],
        ],
    ),
    # PERFORMANCE quotes DESIGN's usearch figures; DESIGN quotes README's fitted temperatures
    (
        "PERFORMANCE.md",
        "DESIGN.md: build {} s (f32) / {} s (f16), 1,000 queries in {} s at recall {} (f16), exact {} s",
        lambda: quoted(
            "DESIGN.md",
            "HNSW build about {} s (f32) / {} s (f16); 1,000 queries k = 10 in {} s at recall@10 {} (f16); exact torch "
            "matmul + top-k {} s",
        ),
    ),
    (
        "DESIGN.md",
        "demo: {} (learned), {} (pixels)",
        lambda: quoted(
            "README.md", "on the demo {} for the learned similarity (median spread 0.0837) and {} for pixels"
        ),
    ),
]


@pytest.mark.parametrize(("name", "template", "sources"), CLAIMS, ids=[f"{n}: {t[:60]}" for n, t, _ in CLAIMS])
def test_each_repeated_figure_is_its_source_rounded_as_quoted(name, template, sources):
    quotes = quoted(name, template)
    expected = sources()
    assert len(quotes) == len(expected)
    assert [like(source, quote) for source, quote in zip(expected, quotes)] == quotes


def test_readme_quotes_the_reports_run_time_and_date_as_written():
    date, minutes = re.search(r"Written by `gmv report` .*?, (\d{4}-\d\d-\d\d), in ([\d.]+) minutes", report()).groups()
    assert f"{minutes} on {date}" in page("README.md")


def test_readme_embedder_table_is_the_attribution_benchmarks():
    rows = table(page("README.md"), "| embedder (no re-rank) |")
    for readme_row, embedder in zip(rows, ("similarity", "pixels", "efficientnet_lite0"), strict=True):
        assert readme_row["embedder (no re-rank)"].startswith(f"`{embedder}`")
        cells = list(readme_row.values())
        assert cells[1] == attribution("fmnist", embedder) and cells[2] == attribution("crops", embedder)
        ms = "ms / image (near-copies)"
        assert (
            cells[3] == f"{number(attribution('fmnist', embedder, ms))} / {number(attribution('crops', embedder, ms))}"
        )


@pytest.fixture(scope="module")
def definitions(tmp_path_factory):
    from gmv_dagster.definitions import build_definitions

    home = tmp_path_factory.mktemp("home")  # build_definitions makes the home's folders: not in the checkout
    return build_definitions(home, {}), build_definitions(home, {"GMV_TRAIN_SHARDS": "2"})


def test_designs_asset_graph_names_every_asset_check_job_and_sensor_and_nothing_else(definitions):
    defs, sharded = definitions
    graph = defs.resolve_asset_graph()
    assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    design = page("DESIGN.md")
    drawing = design[design.index("## Asset graph") :].split("```")[1]
    named = set(re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b", drawing))
    assert named == assets - {a for a in assets if "_" not in a}, (
        "the drawing names an asset that is not, or misses one"
    )
    assert all(re.search(rf"\b{a}\b", drawing) for a in assets)
    count = re.search(r"(\d+) assets in (\d+) groups \(([a-z, ]+)\)", design)
    assert count and (int(count[1]), int(count[2]), set(count[3].split(", "))) == (len(assets), len(groups), groups)
    checks = re.search(r"Checks beside the assets they guard[^:]*:(.*?)\.\n", design, re.S)[1]
    assert set(re.findall(r"`(\w+)`", checks)) == {key.name for key in graph.asset_check_keys}
    jobs = re.search(r"Jobs \(`jobs.py`\):(.*?)\. Sensors", design, re.S)[1]
    assert set(re.findall(r"`(\w+)`", jobs)) == {j.name for j in defs.jobs} | {j.name for j in sharded.jobs}
    sensors = re.search(r"Sensors and schedule\s+\(`sensors.py`\):(.*?)\.", design, re.S)[1]
    assert set(re.findall(r"`(\w+)`", sensors)) == {s.name for s in defs.sensors} | {s.name for s in defs.schedules}
    for check in graph.asset_check_keys:
        assert f"`{check.name}`" in page("README.md"), f"README's list of checks misses {check.name}"


def test_readme_quotes_the_quality_benchmarks_last_line_as_written():
    results = section(page("RESULTS.md"), "bench/quality_domains.py")
    written = re.findall(r"min_auc_blur=[\d.]+ min_auc_noise=[\d.]+ zero_q_clean=[\d.]+", results)
    quoted_lines = re.findall(r"min_auc_blur=[\d.]+ min_auc_noise=[\d.]+ zero_q_clean=[\d.]+", page("README.md"))
    assert len(written) == 1 and quoted_lines == written


def quality_stage_ms() -> dict[tuple[str, str], str]:
    """(domain, metric) -> "ms / image from files" as docs/RESULTS.md's quality table prints it."""
    rows = table(section(page("RESULTS.md"), "bench/quality_domains.py"), "| domain | split | metric |")
    return {(r["domain"].split(" ")[0], r["metric"]): r["ms / image from files"] for r in rows}


def test_quality_stage_timings_quoted_in_readme_and_performance_are_the_benchmarks():
    ms = quality_stage_ms()
    quoted_ms = re.search(r"scores a 28-px image in ([\d.]+) ms against NIQE's ([\d.]+)", page("README.md"))
    assert quoted_ms and quoted_ms.groups() == (ms["fashion-28", "matched_detail"], ms["fashion-28", "niqe_refit"])
    quoted_ms = re.search(
        r"\*\*([\d.]+) ms\*\* at 28 px \(NIQE ([\d.]+)\), \*\*([\d.]+) ms\*\* at 256 px \(NIQE ([\d.]+)\), "
        r"([\d.]+) ms at 512 px",
        page("PERFORMANCE.md"),
    )
    assert quoted_ms and quoted_ms.groups() == (
        ms["fashion-28", "matched_detail"],
        ms["fashion-28", "niqe_refit"],
        ms["photos-256", "matched_detail"],
        ms["photos-256", "niqe_refit"],
        ms["photos-512", "matched_detail"],
    )
