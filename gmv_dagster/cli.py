# `gmv --help` prints this docstring verbatim (RawDescriptionHelpFormatter): keep ruff format from dedenting it.
# fmt: off
"""`gmv`: run the valuation and read its answers from the command line.

    gmv run                   materialise every asset (the demo unless GMV_*_SOURCE say otherwise)
    gmv run --batch NAME      value one batch against the stored training side, then sum every batch
    gmv batches               batches valued so far, and inbox folders waiting
    gmv top [-n 10]           the top-valued training images
    gmv contributors GEN_ID   the training images one generated image came from
    gmv report [--markdown F] the valuation, then every criterion for the method and its baselines
    gmv audit train ID        which generated images credited a training image, from which runs and config
    gmv audit generated ID    a generated image's contributors and weights, from which runs and config
    gmv sql "SELECT ..."      one read-only query of the results' DuckDB file, printed as a table \
(no DuckDB CLI needed)
"""
# fmt: on

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path

import yaml

from .pipeline.database import DATABASE, home_folder

DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def _home(args) -> Path:
    return home_folder(args.home, os.environ)


def _instance(home: Path):
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        if not (dagster_home / "dagster.yaml").exists():
            (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    # Two gmv processes on a new DAGSTER_HOME would both create its SQLite storage and one would fail on the
    # schema's version row; whoever comes second waits here and finds it made.
    with open(Path(os.environ["DAGSTER_HOME"]) / ".gmv-instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        # The UI's job page shows the pre-sensor auto-materialize flag (unset reads as paused) although the
        # automation sensor runs regardless; set, so the page says "on" (no effect on what runs: automation runs
        # through sensors). Dagster's own GraphQL mutation calls the same function.
        from dagster._daemon.asset_daemon import get_auto_materialize_paused, set_auto_materialize_paused

        if get_auto_materialize_paused(instance):
            set_auto_materialize_paused(instance, False)
        return instance


def _query(home: Path, sql: str, params: list | None = None):
    database = home / DATABASE
    if not database.is_file():
        sys.exit(f"no results yet: {database} does not exist; run `gmv run` first")
    from .pipeline.database import connect

    # Waits (with back-off) while a run in another process writes; a read-only open would fail at once.
    con = connect(database)
    try:
        return con.execute(sql, params or []).pl()
    finally:
        con.close()


def top(home: Path, n: int):
    return _query(
        home,
        "SELECT v.rank, v.train_id, i.label, round(v.value, 4) AS value, v.n_generated "
        "FROM training_values v JOIN training_images i ON i.id = v.train_id ORDER BY v.rank LIMIT ?",
        [n],
    )


def _run_config(args) -> dict:
    run_config = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    run_config.setdefault("loggers", {"console": {"config": {"log_level": args.log_level}}})
    return run_config


def _execute(home: Path, run_config: dict, job: str, batches: list[str] | None = None):
    """Value the batches (None: every batch) in-process on the GMV_HOME instance, then `job`'s reports:
    (result, seconds)."""
    from .runner import run_valuation

    start = time.perf_counter()
    try:
        result = run_valuation(home, _instance(home), run_config, with_reports=job == "criteria", batches=batches)
    except ValueError as exc:  # a batch that does not exist: say which ones do
        sys.exit(f"gmv: {exc}")
    elapsed = time.perf_counter() - start
    if not result.success:
        print(f"{job} failed after {elapsed:.0f} s; see the error above (run id {result.run_id})", file=sys.stderr)
    return result, elapsed


def _valuation_inputs(home: Path, run_config: dict):
    """This run's inputs as pipeline/inputs.py digests them, from the environment as build_resources reads it
    (no Dagster import: `gmv run` with nothing new must answer in about a second)."""
    from .pipeline.inputs import valuation_inputs
    from .sources.batches import DEMO, batch_order, configured_batch_key, inbox_folder
    from .sources.fashion_mnist import DEBIAN_FASHION_MNIST

    env = os.environ
    train, generated = env.get("GMV_TRAIN_SOURCE", DEMO), env.get("GMV_GENERATED_SOURCE", DEMO)
    demo = [env.get("GMV_FASHION_MNIST_DIR"), DEBIAN_FASHION_MNIST, home / "datasets"]  # where the demo data may be
    key = configured_batch_key(generated)
    inbox = inbox_folder(home, env)
    batches = {key: demo if generated == DEMO else [generated]}
    batches |= {k: [inbox / k] for k in batch_order(key, inbox)[1:]}
    return valuation_inputs(env, run_config, demo if train == DEMO else [train], batches)


def _values_version(home: Path) -> str | None:
    import duckdb

    from .pipeline.database import read_content_version

    try:
        return read_content_version(home / DATABASE, "training_values")
    except duckdb.Error:  # unreadable (a run holding it past the back-off): not known to be unchanged
        return None


def _print_top(home: Path, n: int, headline: str) -> None:
    import polars as pl

    with pl.Config(tbl_rows=n, tbl_hide_dataframe_shape=True, fmt_str_lengths=40):
        print(headline)
        print(f"results: {home / DATABASE}  (tables training_values, credits, matches, quality_scores, ...)")
        print(f"top {n} training images by value:\n{top(home, n)}")


def cmd_run(args) -> int:
    from dataclasses import replace
    from datetime import UTC, datetime

    from .pipeline.inputs import Plan, plan_run, read_state, write_state

    home, run_config = _home(args), _run_config(args)
    inputs, previous = _valuation_inputs(home, run_config), read_state(home)
    if args.batch:
        plan = Plan(False, args.batch, reason="--batch")
    elif args.force:
        plan = Plan(True, reason="--force")
    else:
        plan = plan_run(previous, inputs, _values_version(home))
    if plan.nothing_new:
        _print_top(
            home,
            args.n,
            f"nothing new since run {previous.run_id} ({previous.finished}): the settings, the code, the training "
            f"images and the {len(inputs.batches)} batch(es) are as they were valued (gmv run --force runs anyway)",
        )
        return 0
    steps = "every step runs" if plan.everything else "their steps, then the sum"
    print(f"gmv: {plan.reason}: {steps}", file=sys.stderr)
    result, elapsed = _execute(home, run_config, "valuation", None if plan.everything else plan.batches)
    if not result.success:
        return 1
    if not plan.everything and (previous is None or previous.common != inputs.common):
        valued = {}  # batches valued against a training side this record does not vouch for: record none
    else:
        kept = {} if plan.everything else {k: v for k, v in previous.batches.items() if k in inputs.batches}
        valued = kept | {k: v for k, v in inputs.batches.items() if plan.everything or k in plan.batches}
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    if valued:
        state = replace(inputs, batches=valued, run_id=result.run_id, finished=finished)
        write_state(home, replace(state, values_version=_values_version(home)))
    _print_top(home, args.n, f"\nvaluation finished in {elapsed:.0f} s (run {result.run_id})")
    return 0


def cmd_report(args) -> int:
    import platform

    from .assets.reports import CRITERIA
    from .assets.reports.tables import results_markdown

    home = _home(args)
    result, elapsed = _execute(home, _run_config(args), "criteria")
    if not result.success:
        return 1
    df = _query(home, "SELECT * FROM criterion_report")
    counts = _query(
        home, "SELECT (SELECT count(*) FROM training_images) AS n, (SELECT count(*) FROM generated_images) AS m"
    )
    command = "scripts/setup.sh && .venv/bin/gmv report --markdown docs/RESULTS.md"
    header = (
        "# Results on the demo\n\nWritten by `gmv report` (regenerate: `" + command + "`), "
        f"{time.strftime('%Y-%m-%d')}, in {elapsed / 60:.1f} minutes on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), {counts['n'][0]:,} training and {counts['m'][0]:,} generated "
        f"images. Every number is a row of the `criterion_report` table in `{home.name}/{DATABASE}`; intervals "
        "are there too (`ci_low`, `ci_high`). Methods: `gmv` = GMValuator as the pipeline ran it; `gmv_q1` without "
        "quality (q = 1); `gmv_exact` exact search instead of HNSW; `gmv_rerank_*` re-ranked candidates; `random`, "
        "`uniform`; `tracin` = TracIn on the demo VAE (gradients over 3 checkpoints, Kronecker random projection).\n"
    )
    page = results_markdown(df, header, CRITERIA)
    print(page)
    if args.markdown:
        from .common.files import marked_sections

        target = Path(args.markdown)
        target.parent.mkdir(parents=True, exist_ok=True)
        kept = marked_sections(target.read_text()) if target.is_file() else []  # benchmarks' sections stay
        target.write_text("\n".join([page + "\n", *kept]))
        print(f"\nwritten to {args.markdown}; criteria ran in {elapsed:.0f} s", file=sys.stderr)
    return 0


LINEAGE = [
    "training_images",
    "demo_generator",
    "generated_images",
    "similarity_model",
    "embedding_model",
    "train_embeddings",
    "generated_embeddings",
    "train_index",
    "credit_temperature",
    "matches",
    "quality_calibration",
    "training_details",
    "quality_scores",
    "credits",
    "training_values",
]
INPUT_TAG = "dagster/input_data_version/"  # Dagster records the data version of each input it read
AUDIT_KEYS = (
    "config",
    "method",
    "backbone",
    "embedder_fingerprint",
    "weights_sha256",
    "metric",
    "action",
    "params_sha256",
    "temperature",
    "median_spread",
    "temperature_source",
)


def shards_of(home: Path, train_id: str | None = None) -> list[str]:
    """The training shards the stored embeddings were made in (of one training image, if given); [] unsharded."""
    columns = _query(home, "SELECT column_name FROM information_schema.columns WHERE table_name = 'train_embeddings'")
    if "shard" not in columns["column_name"].to_list():
        return []
    where, params = ("WHERE id = ?", [train_id]) if train_id is not None else ("", [])
    return _query(home, f"SELECT DISTINCT shard FROM train_embeddings {where} ORDER BY shard", params)[
        "shard"
    ].to_list()


def provenance(instance, assets: list[str], batch: str | None = None, shards: list[str] = ()):
    """Each asset's latest materialisation (per-batch assets: of `batch`; sharded training assets: of each of
    `shards`): run, time, code and data version, and the settings that produced it."""
    import polars as pl

    from .assets.automation import PER_BATCH_ASSETS, TRAIN_SHARDED
    from .assets.metadata import latest_materialization

    rows = []
    for name in assets:
        if name in PER_BATCH_ASSETS and batch is not None:
            partitions = [batch]
        elif name in TRAIN_SHARDED and shards:
            partitions = list(shards)
        else:
            partitions = [None]
        for partition in partitions:
            rows.append(_provenance_row(name, latest_materialization(instance, name, partition), partition))
    return pl.DataFrame(rows)


def _provenance_row(name: str, event, partition: str | None) -> dict:
    import json

    if event is None or event.asset_materialization is None:
        return {
            "asset": name,
            "partition": partition,
            "run_id": None,
            "materialised": None,
            "code_version": None,
            "data_version": None,
            "inputs": "{}",
            "settings": "never materialised",
        }
    mat = event.asset_materialization
    settings = {k: getattr(mat.metadata[k], "value", mat.metadata[k]) for k in AUDIT_KEYS if k in mat.metadata}
    return {
        "asset": name,
        "partition": mat.partition,
        "run_id": event.run_id,
        "materialised": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.timestamp)),
        "code_version": mat.tags.get("dagster/code_version"),
        "data_version": mat.tags.get("dagster/data_version"),
        "inputs": json.dumps(
            {k.removeprefix(INPUT_TAG): v for k, v in sorted(mat.tags.items()) if k.startswith(INPUT_TAG)}
        ),
        "settings": json.dumps(settings, sort_keys=True, default=str),
    }


def cmd_audit(args) -> int:
    import polars as pl

    from .assets.metadata import latest_materialization

    home = _home(args)
    instance = _instance(home)
    if args.kind == "train":
        df = _query(
            home,
            "SELECT c.gen_id, c.batch, c.rank, round(c.weight, 4) AS weight, round(c.credit, 4) AS credit "
            "FROM credits c WHERE c.train_id = ? ORDER BY c.credit DESC, c.gen_id",
            [args.id],
        )
        value = _query(home, "SELECT value, rank FROM training_values WHERE train_id = ?", [args.id])
        if value.is_empty():
            print(f"{args.id!r} is not a training image in {home / DATABASE}", file=sys.stderr)
            return 1
        events = {b: latest_materialization(instance, "credits", b) for b in df["batch"].unique().to_list()}
        runs = {b: event.run_id if event else None for b, event in events.items()}
        df = df.with_columns(credits_run=pl.col("batch").replace_strict(runs, default=None, return_dtype=pl.String))
        title = (
            f"training image {args.id}: value {value['value'][0]:.6g} (rank {value['rank'][0]}), "
            f"credited by {df.height} generated image(s) in {len(runs)} batch(es)"
        )
        batch, shards = None, shards_of(home, args.id)  # its own shard's embeddings and index
        if shards:
            title += f"; training shard {shards[0]}"
    else:
        df = _query(
            home,
            "SELECT c.rank, c.train_id, round(c.distance, 5) AS distance, round(c.weight, 4) AS weight, "
            "round(c.credit, 4) AS credit, c.batch FROM credits c WHERE c.gen_id = ? ORDER BY c.rank",
            [args.id],
        )
        if df.is_empty():
            print(f"{args.id!r} is not a valued generated image in {home / DATABASE}", file=sys.stderr)
            return 1
        batch = df["batch"][0]
        title = f"generated image {args.id} (batch {batch}): {df.height} contributors"
        shards = shards_of(home)  # its contributors were searched for in every shard
    with pl.Config(tbl_rows=200, tbl_hide_dataframe_shape=True, fmt_str_lengths=40):
        print(
            f"{title}\n{df}\n\nproduced by (latest materialisation of each asset"
            + (f"; per-batch assets: batch {batch}" if batch else "")
            + "):"
        )
    for row in provenance(instance, LINEAGE, batch, shards).iter_rows(named=True):
        where = f"[{row['partition']}]" if row["partition"] else ""
        print(
            f"  {row['asset'] + where:<28} run {row['run_id']}  {row['materialised']}  code v{row['code_version']}  "
            f"data {row['data_version']}\n  {'':<28} inputs {row['inputs']}\n  {'':<28} {row['settings']}"
        )
    return 0


def cmd_batches(args) -> int:
    import polars as pl

    from .resources import build_resources
    from .sources.batches import batch_order, scan_inbox

    home = _home(args)
    sources = build_resources(home)["image_sources"]
    ready, waiting = scan_inbox(sources.inbox_path())
    stored = _query(
        home,
        "SELECT g.batch, count(*) AS images, (SELECT count(DISTINCT gen_id) FROM credits c "
        "WHERE c.batch = g.batch) AS valued, (SELECT round(sum(q), 4) FROM quality_scores s "
        "WHERE s.batch = g.batch) AS sum_q FROM generated_images g GROUP BY g.batch ORDER BY g.batch",
    )
    with pl.Config(tbl_rows=1000, tbl_hide_dataframe_shape=True):
        print(f"batches in {home / DATABASE}:\n{stored}")
    new = [k for k in batch_order(sources.source_batch, sources.inbox_path())[1:] if k not in set(stored["batch"])]
    print(
        f"\ninbox {sources.inbox_path()}: {len(ready)} complete folder(s), {len(new)} not valued yet"
        + (f" ({', '.join(new)})" if new else "")
    )
    for folder, why in waiting.items():
        print(f"  waiting: {folder}: {why}")
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
        from .assets.galleries import contributors_image

        home = _home(args)
        credits = _query(home, "SELECT * FROM credits WHERE gen_id = ?", [args.gen_id])
        train = _query(
            home,
            "SELECT id, uri FROM training_images WHERE id IN (SELECT train_id FROM credits WHERE gen_id = ?)",
            [args.gen_id],
        )
        gen = _query(home, "SELECT id, uri FROM generated_images WHERE id = ?", [args.gen_id])
        contributors_image(credits, train, gen, [args.gen_id], partners=credits.height).save(args.png)
        print(f"picture of {args.gen_id} beside its contributors: {args.png}")
    return 0


def cmd_sql(args) -> int:
    """One query of the results; statements that would change them are refused (the tables are Dagster's: a change
    must come from a run, which records its lineage)."""
    import duckdb
    import polars as pl

    try:
        kinds = [statement.type for statement in duckdb.connect().extract_statements(args.query)]
    except duckdb.Error as exc:
        print(f"gmv sql: {exc}", file=sys.stderr)
        return 2
    if len(kinds) != 1 or kinds[0] != duckdb.StatementType.SELECT:
        print(
            "gmv sql runs one query (SELECT, WITH ... SELECT, SHOW, DESCRIBE, SUMMARIZE); the tables change only "
            f"through runs (`gmv run`), which record their lineage: "
            f"got {', '.join(k.name for k in kinds) or 'nothing'}",
            file=sys.stderr,
        )
        return 2
    try:
        df = _query(_home(args), args.query)
    except duckdb.Error as exc:
        print(f"gmv sql: {exc}", file=sys.stderr)
        return 1
    with pl.Config(tbl_rows=args.rows, tbl_cols=-1, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(df)
    if df.height > args.rows:
        print(f"({df.height} rows; the first {args.rows} shown: --rows N shows more)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gmv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", help="GMV_HOME (default: $GMV_HOME or ./gmv_home)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialise every asset")
    run.add_argument("--config", help="Dagster run config (YAML) for the assets")
    run.add_argument("-n", type=int, default=10, help="top-valued images to print")
    run.add_argument("--log-level", default="INFO", help="Dagster console log level (DEBUG shows every event)")
    run.add_argument(
        "--force", action="store_true", help="run every step even when no input changed since the last gmv run"
    )
    run.add_argument(
        "--batch",
        action="append",
        help="value only this batch (repeatable), as the inbox sensor does; default: every batch",
    )
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="materialise the valuation and every criterion report")
    rep.add_argument("--config", help="Dagster run config (YAML)")
    rep.add_argument("--markdown", help="also write the results page here (e.g. docs/RESULTS.md)")
    rep.add_argument("--log-level", default="INFO")
    rep.set_defaults(func=cmd_report)
    audit = sub.add_parser("audit", help="where a value came from: credits, runs, versions and config")
    audit.add_argument("kind", choices=["train", "generated"])
    audit.add_argument("id")
    audit.set_defaults(func=cmd_audit)
    b = sub.add_parser("batches", help="the batches of generated images: valued ones, and inbox folders waiting")
    b.set_defaults(func=cmd_batches)
    t = sub.add_parser("top", help="print the top-valued training images")
    t.add_argument("-n", type=int, default=10)
    t.set_defaults(func=cmd_top)
    c = sub.add_parser("contributors", help="a generated image's contributors and weights")
    c.add_argument("gen_id")
    c.add_argument("--png", help="also draw the generated image beside its contributors into this PNG file")
    c.set_defaults(func=cmd_contributors)
    q = sub.add_parser("sql", help="one read-only query of the results (DuckDB SQL), printed as a table")
    q.add_argument("query", help='e.g. "SELECT * FROM training_values ORDER BY rank LIMIT 10"')
    q.add_argument("--rows", type=int, default=50, help="rows to print at most")
    q.set_defaults(func=cmd_sql)
    args = parser.parse_args(argv)
    return args.func(args)


def entry() -> None:
    """The `gmv` command: main(), then out without the interpreter's teardown. Freeing what a run loaded (torch,
    Dagster's definitions, the index) takes about 1.6 s on 2 cores after the last line is printed, and nothing is
    left to save by then: every result is committed (DuckDB, the Dagster instance), the logs are flushed here."""
    import logging

    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
