"""Two demo reports side by side: the headline criteria of the same methods on two demo homes.

    .venv/bin/python bench/compare_demos.py --old OLD_HOME --new NEW_HOME [--markdown docs/RESULTS.md]

Each home is a GMV_HOME after `gmv report` (its `criterion_report` table in gmv.duckdb). Prints, per method of
METHODS present in both, the headline numbers (`assets.reports.tables.headline`) and the coverage (share of
training images with value > 0) of the old and the new demo; `--markdown` writes the table into that page as
the block `bench/compare_demos.py` (kept by `gmv report --markdown`). Written for issue 15's change of the demo
generator (old: the VAE sampled from N(0, I); new: from each class's aggregate posterior).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import polars as pl

from gmv_dagster.assets.reports import CRITERIA
from gmv_dagster.assets.reports.tables import headline
from gmv_dagster.common.files import put_marked_section

METHODS = ("gmv", "gmv_pixels", "gmv_rerank_l2", "tracin", "random")
COVERAGE = "coverage (share with value > 0)"


def report(home: Path) -> pl.DataFrame:
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        df = con.sql("SELECT * FROM criterion_report").pl()
    numbers = headline(df, CRITERIA).select("method", "setting", "value")
    coverage = df.filter((pl.col("criterion") == "diversity") & (pl.col("metric") == COVERAGE)).select(
        "method", setting=pl.lit("coverage"), value=pl.col("value").cast(pl.Float64)
    )
    return pl.concat([numbers, coverage])


def side_by_side(old: pl.DataFrame, new: pl.DataFrame) -> str:
    settings = list(dict.fromkeys(new["setting"].to_list()))
    methods = [m for m in METHODS if m in set(old["method"]) & set(new["method"])]
    lookup = {(which, m, s): v for which, df in (("old", old), ("new", new)) for m, s, v in df.iter_rows()}

    def cell(which: str, method: str, setting: str) -> str:
        v = lookup.get((which, method, setting))
        return "" if v is None else f"{v:.3g}"

    lines = [
        "| criterion | " + " | ".join(f"{m} old | {m} new" for m in methods) + " |",
        "|---|" + "---|---|" * len(methods),
    ]
    for s in settings:
        lines.append(f"| {s} | " + " | ".join(f"{cell('old', m, s)} | {cell('new', m, s)}" for m in methods) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--title", default="The old and the new demo side by side")
    parser.add_argument("--text", default="", help="paragraph printed under the title")
    args = parser.parse_args()
    table = side_by_side(report(args.old), report(args.new))
    print(table)
    if args.markdown:
        put_marked_section(
            args.markdown,
            "bench/compare_demos.py",
            f"## {args.title}\n\n{args.text.strip()}\n\n{table}\n".replace("\n\n\n", "\n\n"),
        )


if __name__ == "__main__":
    main()
