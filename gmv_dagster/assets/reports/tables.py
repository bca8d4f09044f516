"""The long criterion table's rows, the plots and markdown that go into report metadata, and what a criterion declares
for the report (Criterion: its asset, its sections of the results page, its headline columns)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Section:
    """One section of the results page: the rows of `criterion` (of `metric`; all of them when None) as a method x
    `columns` table, where `columns` is "setting", "metric", or "metric|<setting>" (the metrics of the rows with
    that setting)."""

    criterion: str
    metric: str | None
    columns: str
    text: str
    digits: int = 4


def _rows_of(df: pl.DataFrame, criterion: str, metric: str, setting: str | None) -> pl.DataFrame:
    part = df.filter((pl.col("criterion") == criterion) & (pl.col("metric") == metric))
    return part if setting is None else part.filter(pl.col("setting") == setting)


@dataclass(frozen=True)
class Headline:
    """One column (`label`) of the headline table: per method, the value of the row of `criterion`, `metric` and
    `setting`, or `reduce` of its rows (all settings when `setting` is None) to one (method, value) row each.
    `share`: a share in [0, 1], drawn in the headline plot."""

    label: str
    criterion: str
    metric: str
    setting: str | None = None
    share: bool = False
    reduce: Callable[[pl.DataFrame], pl.DataFrame] | None = None

    def rows(self, df: pl.DataFrame) -> pl.DataFrame:
        part = _rows_of(df, self.criterion, self.metric, self.setting)
        if self.reduce is not None:
            part = self.reduce(part)
        return part.with_columns(setting=pl.lit(self.label))


@dataclass(frozen=True)
class Criterion:
    """A criterion as the report gathers it: its asset (a table of REPORT_SCHEMA rows), its sections of the results
    page and its headline columns. One file declares all three; assets/reports/__init__.py lists them (CRITERIA), in
    the order of the page."""

    asset: dg.AssetsDefinition
    sections: tuple[Section, ...]
    headline: tuple[Headline, ...] = ()


def results_markdown(df: pl.DataFrame, header: str, criteria: Sequence[Criterion]) -> str:
    """The results page: the headline numbers, then each criterion's sections."""
    out = [header, "## Headline\n", pivot_markdown(headline(df, criteria)), ""]
    for section in (section for criterion in criteria for section in criterion.sections):
        part = df.filter(pl.col("criterion") == section.criterion)
        if section.metric is not None:
            part = part.filter(pl.col("metric") == section.metric)
        columns = section.columns
        if "|" in columns:
            columns, setting = columns.split("|")
            part = part.filter(pl.col("setting") == setting)
        title = section.criterion + (f": {section.metric}" if section.metric else "")
        out += [f"## {title}\n", section.text, "", pivot_markdown(part, columns=columns, digits=section.digits), ""]
    return "\n".join(out)


def headline(df: pl.DataFrame, criteria: Sequence[Criterion]) -> pl.DataFrame:
    """One number per headline column and method, columns in the criteria's order."""
    parts = [h.rows(df) for criterion in criteria for h in criterion.headline]
    return pl.concat(
        [
            p.select("method", "setting", "value", *([c for c in ("note",) if c in p.columns])).with_columns(
                pl.col("value").cast(pl.Float64)
            )
            for p in parts
        ],
        how="diagonal_relaxed",
    )


def headline_shares(criteria: Sequence[Criterion]) -> list[str]:
    """The headline columns that are shares in [0, 1] (drawn in the headline plot)."""
    return [h.label for criterion in criteria for h in criterion.headline if h.share]
