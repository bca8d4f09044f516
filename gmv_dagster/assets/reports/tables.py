"""The long criterion table's rows, and the plots and markdown that go into report metadata."""

import dagster as dg
import polars as pl

from ...evaluation.criteria import Measure
from ...evaluation.experiments import METHODS
from ..galleries import png_markdown

REPORT_SCHEMA = {
    "criterion": pl.String,
    "metric": pl.String,
    "method": pl.String,
    "setting": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "note": pl.String,
}


class Rows:
    """Collects rows of one criterion: (metric, method, setting) -> Measure."""

    def __init__(self, criterion: str):
        self.criterion, self.rows = criterion, []

    def add(
        self,
        metric: str,
        method: str,
        setting: str,
        measure: Measure | float | None,
        n: int | None = None,
        note: str | None = None,
    ) -> None:
        if not isinstance(measure, Measure):
            value = None if measure is None or measure != measure else float(measure)  # NaN -> null
            measure = Measure(value, n or 0, note=note)
        self.rows.append(
            {
                "criterion": self.criterion,
                "metric": metric,
                "method": method,
                "setting": setting,
                "value": measure.value,
                "n": measure.n,
                "ci_low": measure.ci_low,
                "ci_high": measure.ci_high,
                "note": note or measure.note,
            }
        )

    def not_run(self, metric: str, method: str, setting: str, reason: str) -> None:
        self.add(metric, method, setting, None, 0, note=f"not run: {reason}")

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=REPORT_SCHEMA)


def method_order(df: pl.DataFrame) -> pl.DataFrame:
    rank = {m: i for i, m in enumerate(METHODS)}
    return (
        df.with_columns(_o=pl.col("method").replace_strict(rank, default=len(rank)))
        .sort("_o", maintain_order=True)
        .drop("_o")
    )


def pivot_markdown(df: pl.DataFrame, columns: str = "setting", digits: int = 3) -> str:
    """method x `columns` markdown table of `value` (n/a with the reason where a cell did not run)."""
    if df.is_empty():
        return "(no rows)"
    cells = df.with_columns(
        cell=pl.when(pl.col("value").is_not_null())
        .then(pl.col("value").round(digits).cast(pl.String))
        .otherwise(pl.lit("n/a"))
    )
    cols = list(dict.fromkeys(cells[columns].to_list()))
    wide = method_order(cells.pivot(on=columns, index="method", values="cell", aggregate_function="first"))
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row in wide.iter_rows(named=True):
        lines.append(f"| {row['method']} | " + " | ".join(str(row.get(c) or "") for c in cols) + " |")
    noted = df.filter(pl.col("note").is_not_null()) if "note" in df.columns else df.clear()
    by_note: dict[str, list[str]] = {}
    for method, note in method_order(noted).select("method", "note").unique(maintain_order=True).iter_rows():
        by_note.setdefault(note, []).append(method)
    notes = [f"{', '.join(methods)}: {note}" for note, methods in by_note.items()]
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))


def bar_plot(df: pl.DataFrame, group: str, title: str, ylabel: str) -> str:
    """Grouped bars: one group per method, one bar per value of `group`, 95% interval where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = method_order(df.filter(pl.col("value").is_not_null()))
    methods = list(dict.fromkeys(df["method"].to_list()))
    groups = list(dict.fromkeys(df[group].to_list()))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(methods)), 3.2))
    width = 0.8 / max(len(groups), 1)
    for gi, g in enumerate(groups):
        part = df.filter(pl.col(group) == g)
        xs, ys, errs = [], [], [[], []]
        for row in part.iter_rows(named=True):
            xs.append(methods.index(row["method"]) + gi * width)
            ys.append(row["value"])
            lo, hi = row.get("ci_low"), row.get("ci_high")
            # max(0, .): an interval can miss its point estimate by a rounding error at 0 or 1
            errs[0].append(max(0.0, row["value"] - lo) if lo is not None else 0.0)
            errs[1].append(max(0.0, hi - row["value"]) if hi is not None else 0.0)
        ax.bar(xs, ys, width, yerr=errs, label=str(g), capsize=2)
    ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(methods))], methods, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(groups) > 1:
        ax.legend(fontsize=7, ncol=min(len(groups), 5))
    md = png_markdown(fig)
    plt.close(fig)
    return md


def report_metadata(df: pl.DataFrame, summary: str, plot: str, **extra) -> dict:
    """Row count, summary and plot; the IO manager adds the column schema as it stores the table."""
    return {
        "dagster/row_count": df.height,
        "summary": dg.MetadataValue.md(summary),
        "plot": dg.MetadataValue.md(plot),
        **extra,
    }


RESULTS_SECTIONS = [
    (
        "C1 identical class",
        "C1@k",
        "setting",
        "Share of each generated image's top-k contributors with its class (mean over generated images).",
    ),
    (
        "C2 identical attributes",
        "C2@10",
        "setting",
        (
            "Share of the top-10 contributors with the generated image's attribute (derived attributes are image "
            "statistics cut at the training median)."
        ),
    ),
    ("C2 identical attributes", "C2@1", "setting", "The same for the top-1 contributor."),
    (
        "reasonableness",
        None,
        "metric",
        (
            "Generated near-copies of known training images (shifted one pixel, contrast 0.9, noise sd 8): share whose "
            "source is the top-1 / in the top-10 contributors."
        ),
    ),
    (
        "C3 out-of-distribution",
        None,
        "metric|all kinds",
        (
            "OOD images (5%) added to the training set, generator retrained, every method run again on 5,000 of its "
            "generations, GMValuator crediting each generation's k = 50 nearest (the pipeline's k is 10; its credit "
            "temperature, fitted to 10 neighbours, is kept, so ranks 11 to 50 get less credit than a temperature "
            "fitted at k = 50 would give them). AUC = P(a clean image is valued above an OOD image), ties half; "
            "precision at bottom-k with k = the number of OOD images (expected under random tie-breaking). A "
            "similarity method leaves every training image outside all top k at value 0, tied with the OOD images it "
            "leaves there, so a method whose values are never negative (all here but TracIn) cannot exceed AUC (1 + "
            "coverage of the clean images) / 2, shown per method. At k = 10 no number of generations tried reaches "
            "coverage 0.8 (0.52 after 5,000; nearest neighbours favour typical images: `bench/c3_coverage.py` below), "
            "so C3 would measure the coverage more than the method; at k = 50, 5,000 generations reach about 0.81 with "
            "the learned similarity (`gmv`'s coverage in the table below). The OOD share of the total value (the OOD "
            "share of the training set if they were "
            "valued like the rest) is the sharper number."
        ),
    ),
    ("C3 out-of-distribution", "AUC (OOD valued lower)", "setting", "AUC by kind of OOD image."),
    (
        "C4 efficiency",
        None,
        "setting",
        "Seconds per generated image, per stage and end to end (training-side stages divided by the generated images).",
    ),
    (
        "fidelity",
        "distance_to_removed_gain",
        "setting",
        (
            "Remove p% of the training set, retrain from the same seed, regenerate from the same noise: mean increase "
            "of each generation's distance to the nearest removed image. Expected: top > random > bottom."
        ),
    ),
    (
        "fidelity",
        "displacement",
        "setting",
        "Mean cosine distance between each generation and its counterpart from the same noise.",
    ),
    (
        "fidelity",
        "frechet_gain",
        "setting",
        "Change of the Fréchet distance (embedding space) from the generations to the full training set.",
    ),
    ("diversity", None, "metric|all", "How widely value spreads over the training images."),
    ("diversity", "value share by class", "setting", "Share of the total value by class."),
    ("consistency", "spearman", "setting", "Spearman rank correlation of the values with the pipeline's run."),
    ("consistency", "kendall", "setting", "Kendall tau-b of the same."),
    (
        "LDS",
        "LDS",
        "setting",
        (
            "Linear datamodeling score (TRAK; D-TRAK's protocol): the demo VAE retrained on S random halves of the "
            "training set; for each generated sample, the Spearman correlation over the subsets between the method's "
            "attribution summed over the subset and the retrained model's log-likelihood of the sample (minus its "
            "negative ELBO); the mean over samples, 95% bootstrap interval in `criterion_report`. Attributions are "
            "each method's listed contributors (GMValuator's credit is exactly its top k; TracIn is cut to its top "
            "50). Published on CIFAR-2 generated samples (another data set and a DDPM, validation samples in "
            "brackets): pixel similarity 0.05 (0.08), CLIP similarity 0.04 (0.09), TRAK 0.16 (0.24), D-TRAK 0.26 "
            "(0.34)."
        ),
    ),
]


def results_markdown(df: pl.DataFrame, header: str) -> str:
    """The results page: the headline numbers, then one method x setting table per criterion."""
    out = [header, "## Headline\n", pivot_markdown(headline(df)), ""]
    for criterion, metric, columns, text in RESULTS_SECTIONS:
        part = df.filter(pl.col("criterion") == criterion)
        if metric is not None:
            part = part.filter(pl.col("metric") == metric)
        if "|" in columns:
            columns, setting = columns.split("|")
            part = part.filter(pl.col("setting") == setting)
        title = criterion + (f": {metric}" if metric else "")
        out += [
            f"## {title}\n",
            text,
            "",
            pivot_markdown(part, columns=columns, digits=5 if criterion.startswith("C4") else 4),
            "",
        ]
    return "\n".join(out)


HEADLINE = [
    ("C1 identical class", "C1@k", "k=10", "C1@10"),
    ("reasonableness", "source in top-1", "near-copies", "near-copy source top-1"),
    ("C3 out-of-distribution", "AUC (OOD valued lower)", "all kinds", "C3 AUC"),
    ("C3 out-of-distribution", "precision at bottom-k", "all kinds", "C3 precision@bottom"),
    ("C4 efficiency", "seconds per generated image", "end to end", "C4 s / image"),
    ("diversity", "Gini", "all", "Gini"),
    ("consistency", "spearman", "generation seed", "consistency seeds"),
]
HEADLINE_SHARES = ["C1@10", "near-copy source top-1", "C3 AUC", "consistency seeds"]


def headline(df: pl.DataFrame) -> pl.DataFrame:
    """One number per criterion and method (C2 and fidelity as their means over attributes / arms)."""
    parts = [
        df.filter((pl.col("criterion") == c) & (pl.col("metric") == m) & (pl.col("setting") == s)).with_columns(
            setting=pl.lit(label)
        )
        for c, m, s, label in HEADLINE
    ]
    c2 = df.filter((pl.col("criterion") == "C2 identical attributes") & (pl.col("metric") == "C2@10"))
    parts.append(
        c2.group_by("method", maintain_order=True)
        .agg(pl.col("value").mean())
        .with_columns(setting=pl.lit("C2@10 (mean)"))
    )
    gap = df.filter((pl.col("criterion") == "fidelity") & (pl.col("metric") == "distance_to_removed_gain"))
    parts.append(
        gap.group_by("method", maintain_order=True)
        .agg(
            value=pl.col("value").filter(pl.col("setting").str.starts_with("top")).first()
            - pl.col("value").filter(pl.col("setting").str.starts_with("bottom")).first()
        )
        .with_columns(setting=pl.lit("fidelity top - bottom"))
    )
    parts.append(
        df.filter((pl.col("criterion") == "LDS") & (pl.col("metric") == "LDS")).with_columns(setting=pl.lit("LDS"))
    )
    return pl.concat(
        [
            p.select("method", "setting", "value", *([c for c in ("note",) if c in p.columns])).with_columns(
                pl.col("value").cast(pl.Float64)
            )
            for p in parts
        ],
        how="diagonal_relaxed",
    )
