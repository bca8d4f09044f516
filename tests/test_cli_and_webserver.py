"""Headless CLI (`dagster asset materialize`) and `dagster dev` serving GraphQL, as real processes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

BIN = Path(sys.executable).parent


def gmv(env, *args, timeout=600):
    return subprocess.run([str(BIN / "gmv"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_headless_materialize_and_gmv_cli(tmp_path, dagster_env, drop_batch):
    env = {k: v for k, v in dagster_env.items() if k != "GMV_BACKBONE"}  # the default: the learned similarity
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"ops": {"quality_calibration": {"config": {"reference_size": 36}}}}))
    # `gmv run` registers the configured source as the batch `generated` and values it ...
    first = subprocess.run(
        [str(BIN / "gmv"), "run", "--config", str(config), "-n", "3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0 and "valuation finished" in first.stdout, first.stderr[-3000:]
    # ... then Dagster's own CLI materialises every asset, reports included, for that batch.
    cmd = [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "--select",
        "*",
        "--partition",
        "generated",
        "-m",
        "gmv_dagster.definitions",
        "--config",
        str(config),
    ]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "gmv_home" / "gmv.duckdb"), read_only=True) as con:
        n, total = con.execute("SELECT count(*), sum(value) FROM training_values").fetchone()
        total_q = con.execute("SELECT sum(q) FROM quality_scores").fetchone()[0]
        not_run = con.execute("SELECT note FROM criterion_report WHERE criterion = 'C3 out-of-distribution'").fetchall()
    assert n == 36 and total == pytest.approx(total_q)
    # user data: the reports run too, and the criteria that retrain the demo generator say why they did not
    assert not_run and all("needs the demo generator" in note for (note,) in not_run)

    top = subprocess.run([str(BIN / "gmv"), "top", "-n", "3"], env=env, capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and top.stdout.count("train_id") == 1
    with duckdb.connect(str(tmp_path / "gmv_home" / "gmv.duckdb"), read_only=True) as con:
        best = con.execute("SELECT rank, train_id FROM training_values ORDER BY rank LIMIT 3").fetchall()
    rows = [
        [cell.strip() for cell in line.strip("│").split("┆")][:2] for line in top.stdout.splitlines() if "┆" in line
    ]
    assert rows[-3:] == [[str(rank), train_id] for rank, train_id in best]  # the table's top 3, in order
    # README's "Read the answers" query, without a DuckDB CLI; and nothing but a query gets through
    sql = gmv(env, "sql", "SELECT rank, train_id FROM training_values ORDER BY rank LIMIT 3", timeout=120)
    assert sql.returncode == 0, sql.stderr
    cells = [[cell.strip() for cell in line.strip("│").split("┆")] for line in sql.stdout.splitlines() if "┆" in line]
    assert cells[-3:] == [[str(rank), train_id] for rank, train_id in best]
    refused = gmv(env, "sql", "DROP TABLE training_values", timeout=120)
    assert refused.returncode == 2 and "got DROP" in refused.stderr
    with duckdb.connect(str(tmp_path / "gmv_home" / "gmv.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM training_values").fetchone()[0] == 36
    gen_id = "generated/bar/g000.png"
    picture = tmp_path / "contributors.png"
    who = subprocess.run(
        [str(BIN / "gmv"), "contributors", gen_id, "--png", str(picture)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert who.returncode == 0 and "bar/t000.png" in who.stdout.splitlines()[5], who.stdout
    audit = subprocess.run(
        [str(BIN / "gmv"), "audit", "train", "bar/t000.png"], env=env, capture_output=True, text=True, timeout=120
    )
    assert audit.returncode == 0, audit.stderr
    assert "training image bar/t000.png" in audit.stdout and "generated/bar/g000.png" in audit.stdout
    lineage = [line for line in audit.stdout.splitlines() if " run " in line]
    assert len(lineage) == 15 and all("code v" in line and "data " in line for line in lineage)
    assert len({line.split(" run ")[1].split()[0] for line in lineage}) == 1  # one run made them all
    assert '"backbone": "similarity"' in audit.stdout and '"temperature_source": "credit_temperature"' in audit.stdout
    with duckdb.connect(str(tmp_path / "gmv_home" / "gmv.duckdb"), read_only=True) as con:
        tau = con.execute("SELECT temperature FROM credit_temperature").fetchone()[0]
    assert f'"temperature": {tau}' in audit.stdout  # the credits used the fitted tau
    # each asset lists the data versions (content hashes) of the inputs it was computed from
    lines = audit.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("credits") and " run " in line)
    credits_inputs = json.loads(lines[at + 1].split("inputs ", 1)[1])
    assert set(credits_inputs) >= {"matches", "quality_scores", "training_images", "generated_images"}
    gen_audit = subprocess.run(
        [str(BIN / "gmv"), "audit", "generated", gen_id], env=env, capture_output=True, text=True, timeout=120
    )
    assert gen_audit.returncode == 0 and "(batch generated): 10 contributors" in gen_audit.stdout
    assert "credits[generated]" in gen_audit.stdout
    unknown = subprocess.run(
        [str(BIN / "gmv"), "audit", "train", "nope.png"], env=env, capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 1 and "is not a training image" in unknown.stderr
    from PIL import Image

    with Image.open(picture) as img:  # the generated image and its 10 contributors in one row
        assert img.width > 10 * 56 and img.height < 2 * 56 + 30

    # a new batch in the inbox: listed as waiting, valued alone with --batch, then listed as valued
    drop_batch(Path(env["GMV_HOME"]) / "inbox", "b2", [2, 8, 30])
    drop_batch(Path(env["GMV_HOME"]) / "inbox", "b3", [4], complete=False)
    waiting = gmv(env, "batches")
    assert (
        waiting.returncode == 0 and "1 not valued yet (b2)" in waiting.stdout and "b3: no _COMPLETE" in waiting.stdout
    )
    assert gmv(env, "run", "--batch", "b2", "--config", str(config)).returncode == 0
    valued = gmv(env, "batches").stdout
    assert "0 not valued yet" in valued and [line for line in valued.splitlines() if "b2" in line and " 3 " in line]


def test_dagster_dev_serves_every_asset_over_graphql(dagster_dev, asset_names):
    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == asset_names
    assert {n["groupName"] for n in nodes} == {"sources", "embeddings", "matching", "quality", "credit", "reports"}


def test_a_batch_dropped_in_the_inbox_is_valued_with_no_other_action(tmp_path, dagster_env, dagster_dev, drop_batch):
    """With `dagster dev` up (its daemon runs the sensors), a new inbox folder alone updates training_values to
    the values of a full recomputation over both batches."""
    import dagster as dg
    import polars as pl

    from gmv_dagster.runner import run_valuation

    env = dagster_env
    first = subprocess.run(
        [str(BIN / "gmv"), "run", "-n", "1"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr[-3000:]
    database = Path(env["GMV_HOME"]) / "gmv.duckdb"

    def values() -> pl.DataFrame:
        with duckdb.connect(str(database), read_only=True) as con:
            return con.execute("SELECT * FROM training_values").pl()

    def batches_summed() -> int:
        nodes = dagster_dev.graphql(
            '{ assetNodes(assetKeys: [{path: ["training_values"]}]) { assetMaterializations(limit: 1) '
            "{ metadataEntries { label ... on IntMetadataEntry { intValue } } } } }"
        )
        mats = nodes["data"]["assetNodes"][0]["assetMaterializations"]
        entries = {e["label"]: e.get("intValue") for e in mats[0]["metadataEntries"]} if mats else {}
        return entries.get("n_batches") or 0

    assert batches_summed() == 1
    drop_batch(Path(env["GMV_HOME"]) / "inbox", "b2", [2, 8, 30])  # default inbox: GMV_HOME/inbox
    deadline = time.time() + 300
    while batches_summed() < 2:
        if time.time() > deadline:
            pytest.fail(
                "training_values did not sum the new batch within 300 s:\n" + dagster_dev.log.read_text()[-4000:]
            )
        time.sleep(3)
    incremental = values()

    fresh = tmp_path / "fresh"
    fresh_env = {**env, "GMV_INBOX": str(Path(env["GMV_HOME"]) / "inbox")}
    assert run_valuation(fresh, dg.DagsterInstance.ephemeral(), env=fresh_env).success
    with duckdb.connect(str(fresh / "gmv.duckdb"), read_only=True) as con:
        assert con.execute("SELECT * FROM training_values").pl().equals(incremental)


def test_gmv_run_runs_only_what_changed_since_the_last(tmp_path, dagster_env, drop_batch):
    import dagster as dg

    instance = dg.DagsterInstance.from_config(dagster_env["DAGSTER_HOME"])

    def runs() -> list[tuple[str, str | None]]:
        """(job, partition) of every run so far, oldest first."""
        return [(r.job_name, r.tags.get("dagster/partition")) for r in reversed(instance.get_runs())]

    first = gmv(dagster_env, "run", "-n", "3")
    assert first.returncode == 0 and "no earlier run recorded in this home: every step runs" in first.stderr
    assert runs() == [("valuation", "generated")]
    again = gmv(dagster_env, "run", "-n", "3")
    assert again.returncode == 0 and again.stdout.startswith("nothing new since run "), again.stderr[:300]
    assert runs() == [("valuation", "generated")]  # nothing launched
    assert again.stdout.split("top 3")[1] == first.stdout.split("top 3")[1]  # the same table, from the stored values
    # a new inbox batch: its own steps and the sum, in one run; nothing of the training side or the other batch
    drop_batch(Path(dagster_env["GMV_HOME"]) / "inbox", "b2", [2, 8, 30])
    batch = gmv(dagster_env, "run", "-n", "3")
    assert batch.returncode == 0 and "new or changed batch(es): b2: their steps, then the sum" in batch.stderr
    assert runs()[1:] == [("valuation", "b2")]
    assert sorted(k.to_user_string() for k in instance.get_runs()[0].asset_selection) == sorted(
        ["generated_images", "generated_embeddings", "quality_scores", "matches", "credits", "training_values"]
    )
    assert gmv(dagster_env, "run").stdout.startswith("nothing new since run ")
    # a training image rewritten: everything runs again
    train = Path(dagster_env["GMV_TRAIN_SOURCE"]) / "bar" / "t000.png"
    os.utime(train, ns=(train.stat().st_atime_ns, train.stat().st_mtime_ns + 1))
    changed = gmv(dagster_env, "run")
    assert changed.returncode == 0 and "the training images changed: every step runs" in changed.stderr
    assert runs()[2:] == [("valuation", "generated"), ("valuation", "b2")]
    assert gmv(dagster_env, "run", "--force").stderr.count("gmv: job ") == 2  # --force: every step regardless
