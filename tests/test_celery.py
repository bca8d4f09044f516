"""The sharded pipeline on a real multi-worker engine: dagster-celery, Redis on loopback, two workers."""

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from gmv_dagster.runner import run_valuation

GMV = Path(sys.executable).parent / "gmv"


def test_two_celery_workers_value_two_shards_like_one_process(tmp_path, celery_cluster, read):
    env = celery_cluster.env
    run = subprocess.run([str(GMV), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "job train_shard, partition 0-of-2" in run.stderr and "job train_shard, partition 1-of-2" in run.stderr

    # Every step ran as a Celery task, and both workers took some.
    done = [
        len(re.findall(r"Task execute_plan\[[^\]]+\] succeeded", log.read_text())) for log in celery_cluster.worker_logs
    ]
    assert all(n > 0 for n in done), done
    assert not any("raised unexpected" in log.read_text() for log in celery_cluster.worker_logs)

    home = Path(env["GMV_HOME"])
    reference = tmp_path / "in_process"
    plain = {k: v for k, v in env.items() if k not in ("GMV_EXECUTOR", "GMV_TRAIN_SHARDS", "GMV_HOME")}
    assert run_valuation(reference, dg.DagsterInstance.ephemeral(), env=plain).success
    assert read(home, "training_values", "train_id").equals(read(reference, "training_values", "train_id"))
    assert read(home, "matches", "gen_id, rank").equals(read(reference, "matches", "gen_id, rank"))


def test_a_distributed_run_leaves_the_callers_environment_as_it_was(tmp_path, dagster_env):
    """run_valuation sets the run's environment for its workers' children only while it runs, even when it fails:
    a later `dagster dev` or run started from the same process must not inherit GMV_EXECUTOR=celery."""
    import os

    import pytest

    env = {**dagster_env, "GMV_EXECUTOR": "celery", "GMV_CELERY_BROKER": "redis://127.0.0.1:1/0"}
    before = dict(os.environ)
    with dg.instance_for_test() as instance:
        with pytest.raises(ValueError, match="no batch 'nope'"):
            run_valuation(tmp_path / "home", instance, env=env, batches=["nope"])
    assert dict(os.environ) == before
