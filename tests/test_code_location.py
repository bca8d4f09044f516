"""The code location as Dagster's own tools see it: one name everywhere, `dg check defs` and `dg list defs`, and
`gmv run`'s runs filed under the location's jobs (the UI's run lists and timeline, re-execution, launched-by)."""

import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import yaml

from gmv_dagster.runner import CODE_LOCATION, LAUNCHED_BY, REPOSITORY

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_code_location_has_one_name_in_every_file_that_serves_it():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    names = {
        "workspace.yaml": workspace["load_from"][0]["python_module"]["location_name"],
        "[tool.dagster]": pyproject["tool"]["dagster"]["code_location_name"],
        "[tool.dg.project]": pyproject["tool"]["dg"]["project"]["code_location_name"],
    }
    assert names == dict.fromkeys(names, CODE_LOCATION)


def _dg(env, *args):
    # dg finds the project from the working directory (pyproject.toml's [tool.dg]) and runs this venv's python
    env = {**env, "PATH": f"{BIN}:{env.get('PATH', '')}"}
    return subprocess.run([str(BIN / "dg"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_and_dg_list_defs(dagster_env, asset_names):
    checked = _dg(dagster_env, "check", "defs")
    assert checked.returncode == 0 and "All definitions loaded successfully." in checked.stdout, checked.stderr[-3000:]
    listed = _dg(dagster_env, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    assert {a["asset_key"] for a in defs["assets"]} == asset_names
    assert {j["name"] for j in defs["jobs"]} >= {"valuation", "value_batch", "refresh_sources", "criteria"}
    assert {s["name"] for s in defs["sensors"]} == {"inbox_sensor", "gmv_automation"}
    assert {s["name"] for s in defs["schedules"]} == {"revaluation"}


RUNS = """{ runsOrError { ... on Runs { results { runId pipelineName status pipelineSnapshotId
  repositoryOrigin { repositoryLocationName repositoryName } tags { key value } } } } }"""
JOB = """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
  __typename ... on Pipeline { pipelineSnapshotId runs { runId } } } }"""
REEXECUTE = """mutation($parent: String!) { launchPipelineReexecution(reexecutionParams:
  {parentRunId: $parent, strategy: ALL_STEPS}) { __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status
  repositoryOrigin { repositoryLocationName } } } }"""


def test_gmv_runs_are_the_code_locations_runs_in_the_ui(tmp_path, dagster_env, start_dagster_dev):
    done = subprocess.run(
        [str(BIN / "gmv"), "run", "-n", "3"], env=dagster_env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with start_dagster_dev() as server:
        runs = server.graphql(RUNS)["data"]["runsOrError"]["results"]
        assert len(runs) == 1, runs  # the demo source is one batch: one run of the whole valuation
        run = runs[0]
        assert run["repositoryOrigin"] == {"repositoryLocationName": CODE_LOCATION, "repositoryName": REPOSITORY}
        assert {"key": LAUNCHED_BY, "value": "gmv run"} in run["tags"]
        selector = {"pipelineName": "valuation", "repositoryName": REPOSITORY, "repositoryLocationName": CODE_LOCATION}
        job = server.graphql(JOB, {"selector": selector})["data"]["pipelineOrError"]
        # the job page lists the run (runs are filed by their origin) and sees the version it runs now
        assert job["__typename"] == "Pipeline" and [r["runId"] for r in job["runs"]] == [run["runId"]]
        assert job["pipelineSnapshotId"] == run["pipelineSnapshotId"]
        # the job page's automation tag reads this flag: "on", as the automation sensor is
        assert server.graphql("{ instance { autoMaterializePaused } }")["data"]["instance"] == {
            "autoMaterializePaused": False
        }
        # re-executed from the UI: the webserver launches it from its own code location, and it succeeds
        again = server.graphql(REEXECUTE, {"parent": run["runId"]})["data"]["launchPipelineReexecution"]
        assert again["__typename"] == "LaunchRunSuccess", again
        deadline, status = time.time() + 400, None
        while time.time() < deadline:
            status = server.graphql(STATUS, {"id": again["run"]["runId"]})["data"]["runOrError"]
            if status["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(3)
        assert status == {"status": "SUCCESS", "repositoryOrigin": {"repositoryLocationName": CODE_LOCATION}}, (
            server.log.read_text()[-4000:]
        )
