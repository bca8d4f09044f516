"""Faults: runs killed with SIGKILL inside each heavy asset, and two runs at once on one GMV_HOME.

Every table must afterwards open and hold either what it held before the killed run or what that run
would have written, never a mix; a rerun gives the values of an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef

from gmv_dagster.runner import run_valuation

# Pipeline mechanics, not the embedder: pixels, so that no test trains a similarity it does not look at.
PIXELS = {"GMV_BACKBONE": "pixels"}

GMV = Path(sys.executable).parent / "gmv"
TABLES = [
    "training_images",
    "generated_images",
    "train_embeddings",
    "generated_embeddings",
    "quality_calibration",
    "quality_scores",
    "matches",
    "credits",
    "training_values",
]
KILL_IN = [
    "train_embeddings",
    "train_index",
    "quality_calibration",
    "quality_scores",
    "matches",
    "credits",
    "training_values",
]
BASE = {"quality_calibration": {"config": {"reference_size": 36}}}
NEW = {"ops": BASE, "resources": {"method": {"config": {"temperature": 0.01}}}}  # what the killed runs would write


# Columns that name where a home keeps its files, which differ between the homes compared.
PATHS = {"training_images": "uri", "generated_images": "uri", "quality_calibration": "params_file"}


def tables(home: Path) -> dict:
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        # our table names, not user input; rows in a fixed order for comparison
        return {
            t: con.execute(f"SELECT * {f'EXCLUDE ({PATHS[t]})' if t in PATHS else ''} FROM {t} ORDER BY ALL").pl()
            for t in TABLES
        }


def start_gmv(env: dict, cwd: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(GMV), "run", "--config", str(config)],
        env=env,
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_inside(proc: subprocess.Popen, instance: dg.DagsterInstance, asset: str, timeout: float = 300) -> None:
    """SIGKILL the run's whole process group once the step of `asset` has started."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        runs = instance.get_runs(limit=1)
        if runs:
            started = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START).records
            if any(r.event_log_entry.step_key == asset for r in started):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return
        time.sleep(0.02)
    pytest.fail(
        f"the step {asset} never started (exit {proc.poll()}): {proc.stderr.read()[-2000:] if proc.stderr else ''}"
    )


@pytest.fixture
def references(tmp_path, image_folders):
    """The tables of uninterrupted runs: the first configuration, and the one the killed runs use."""
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    out = {}
    for name, config in (("old", {"ops": BASE}), ("new", NEW)):
        assert run_valuation(tmp_path / f"ref_{name}", dg.DagsterInstance.ephemeral(), config, env=env).success
        out[name] = tables(tmp_path / f"ref_{name}")
    assert not out["old"]["credits"].equals(out["new"]["credits"])
    return out


def test_sigkill_inside_each_heavy_asset_loses_nothing_and_a_rerun_gives_the_same_values(
    tmp_path, dagster_env, references
):
    home = Path(dagster_env["GMV_HOME"])
    old_config, new_config = tmp_path / "old.json", tmp_path / "new.json"
    old_config.write_text(json.dumps({"ops": BASE}))
    new_config.write_text(json.dumps(NEW))
    first = subprocess.run(
        [str(GMV), "run", "--config", str(old_config)],
        env=dagster_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(dagster_env["DAGSTER_HOME"]))
    for asset in KILL_IN:
        kill_inside(start_gmv(dagster_env, tmp_path, new_config), instance, asset)
        now = tables(home)  # the file opens after every kill ...
        for table, rows in now.items():  # ... and each table is whole: the old rows or the new, not a mix
            assert rows.equals(references["old"][table]) or rows.equals(references["new"][table]), (asset, table)
    again = subprocess.run(
        [str(GMV), "run", "--config", str(new_config)],
        env=dagster_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    final = tables(home)
    assert all(final[t].equals(references["new"][t]) for t in TABLES)


def test_two_runs_at_once_on_one_home_serialise_and_agree(tmp_path, dagster_env, references):
    config = tmp_path / "new.json"
    config.write_text(json.dumps(NEW))
    procs = [start_gmv(dagster_env, tmp_path, config) for _ in range(2)]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    for proc, err in zip(procs, errors):
        assert proc.returncode == 0, err[-3000:]
    final = tables(Path(dagster_env["GMV_HOME"]))
    assert all(final[t].equals(references["new"][t]) for t in TABLES)
