"""`gmv`: run the valuation and read its answers from the command line.

    gmv run                   materialise every asset (the demo unless GMV_*_SOURCE say otherwise)
    gmv top [-n 10]           the top-valued training images
    gmv contributors GEN_ID   the training images one generated image came from
    gmv report [--markdown F] the valuation, then every criterion for the method and its baselines
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import yaml

DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def _home(args) -> Path:
    return Path(args.home or os.environ.get("GMV_HOME", "gmv_home")).expanduser().resolve()


def _instance(home: Path):
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        if not (dagster_home / "dagster.yaml").exists():
            (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dg.DagsterInstance.get()


def _query(home: Path, sql: str, params: list | None = None):
    database = home / "gmv.duckdb"
    if not database.is_file():
        sys.exit(f"no results yet: {database} does not exist; run `gmv run` first")
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql, params or []).pl()


def top(home: Path, n: int):
    return _query(
        home,
        "SELECT v.rank, v.train_id, i.label, round(v.value, 4) AS value, v.n_generated "
        "FROM training_values v JOIN training_images i ON i.id = v.train_id ORDER BY v.rank LIMIT ?",
        [n],
    )


def _execute(args, job: str):
    """Run a job of the code location in-process on the GMV_HOME instance: (result, home, seconds)."""
    from .definitions import build_definitions

    home = _home(args)
    run_config = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    run_config.setdefault("loggers", {"console": {"config": {"log_level": args.log_level}}})
    instance = _instance(home)
    defs = build_definitions(home)
    start = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    elapsed = time.perf_counter() - start
    if not result.success:
        print(f"{job} failed after {elapsed:.0f} s; see the error above (run id {result.run_id})", file=sys.stderr)
    return result, home, elapsed


def cmd_run(args) -> int:
    result, home, elapsed = _execute(args, "valuation")
    if not result.success:
        return 1
    import polars as pl

    with pl.Config(tbl_rows=args.n, tbl_hide_dataframe_shape=True, fmt_str_lengths=40):
        print(f"\nvaluation finished in {elapsed:.0f} s (run {result.run_id})")
        print(f"results: {home / 'gmv.duckdb'}  (tables training_values, credits, matches, quality_scores, ...)")
        print(f"top {args.n} training images by value:\n{top(home, args.n)}")
    return 0


def cmd_report(args) -> int:
    import platform

    from .assets.report_tables import results_markdown

    result, home, elapsed = _execute(args, "criteria")
    if not result.success:
        return 1
    df = _query(home, "SELECT * FROM criterion_report")
    counts = _query(home, "SELECT (SELECT count(*) FROM training_images) AS n, (SELECT count(*) FROM generated_images) AS m")
    command = "scripts/setup.sh && .venv/bin/gmv report --markdown docs/RESULTS.md"
    header = (
        "# Results on the demo\n\nWritten by `gmv report` (regenerate: `" + command + "`), "
        f"{time.strftime('%Y-%m-%d')}, in {elapsed / 60:.1f} minutes on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), {counts['n'][0]:,} training and {counts['m'][0]:,} generated "
        f"images. Every number is a row of the `criterion_report` table in `{home.name}/gmv.duckdb`; intervals "
        "are there too (`ci_low`, `ci_high`). Methods: `gmv` = GMValuator as the pipeline ran it; `gmv_q1` without "
        "quality (q = 1); `gmv_exact` exact search instead of HNSW; `gmv_rerank_*` re-ranked candidates; `random`, "
        "`uniform`; `tracin` = TracIn on the demo VAE (gradients over 3 checkpoints, Kronecker random projection).\n"
    )
    page = results_markdown(df, header)
    print(page)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(page + "\n")
        print(f"\nwritten to {args.markdown}; criteria ran in {elapsed:.0f} s", file=sys.stderr)
    return 0


def cmd_top(args) -> int:
    import polars as pl

    with pl.Config(tbl_rows=args.n, tbl_hide_dataframe_shape=True):
        print(top(_home(args), args.n))
    return 0


def cmd_contributors(args) -> int:
    import polars as pl

    df = _query(
        _home(args),
        "SELECT c.rank, c.train_id, i.label, round(c.distance, 5) AS distance, round(c.weight, 4) AS weight, "
        "round(c.credit, 4) AS credit FROM credits c JOIN training_images i ON i.id = c.train_id "
        "WHERE c.gen_id = ? ORDER BY c.rank",
        [args.gen_id],
    )
    if df.is_empty():
        print(f"no credits for generated image {args.gen_id!r}", file=sys.stderr)
        return 1
    with pl.Config(tbl_rows=100, tbl_hide_dataframe_shape=True):
        print(df)
    if args.png:
        import base64

        from .assets.galleries import contributors_gallery

        home = _home(args)
        credits = _query(home, "SELECT * FROM credits WHERE gen_id = ?", [args.gen_id])
        train = _query(home, "SELECT id, uri FROM training_images WHERE id IN (SELECT train_id FROM credits WHERE gen_id = ?)",
                       [args.gen_id])
        gen = _query(home, "SELECT id, uri FROM generated_images WHERE id = ?", [args.gen_id])
        markdown = contributors_gallery(credits, train, gen, [args.gen_id], partners=credits.height)
        Path(args.png).write_bytes(base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")")))
        print(f"picture of {args.gen_id} beside its contributors: {args.png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gmv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="GMV_HOME (default: $GMV_HOME or ./gmv_home)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialise every asset")
    run.add_argument("--config", help="Dagster run config (YAML) for the assets")
    run.add_argument("-n", type=int, default=10, help="top-valued images to print")
    run.add_argument("--log-level", default="INFO", help="Dagster console log level (DEBUG shows every event)")
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="materialise the valuation and every criterion report")
    rep.add_argument("--config", help="Dagster run config (YAML)")
    rep.add_argument("--markdown", help="also write the results page here (e.g. docs/RESULTS.md)")
    rep.add_argument("--log-level", default="INFO")
    rep.set_defaults(func=cmd_report)
    t = sub.add_parser("top", help="print the top-valued training images")
    t.add_argument("-n", type=int, default=10)
    t.set_defaults(func=cmd_top)
    c = sub.add_parser("contributors", help="a generated image's contributors and weights")
    c.add_argument("gen_id")
    c.add_argument("--png", help="also draw the generated image beside its contributors into this PNG file")
    c.set_defaults(func=cmd_contributors)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
