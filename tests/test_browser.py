"""The UI in a real browser: headless Chromium (Debian's) on `dagster dev`, driven by Selenium.

Screenshots are kept in $GMV_TEST_ARTIFACTS (default: test-artifacts/ in the checkout).
"""

import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

ARTIFACTS = Path(os.environ.get("GMV_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""

ADD_PARTITION = """mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "generated_batches", partitionKey: $key) {
  __typename ... on PythonError { message } } }"""


@pytest.fixture
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(
            "headless Chromium is missing: `apt-get install chromium chromium-driver` (scripts/setup.sh does this)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=2400,9000"):
        options.add_argument(arg)
    options.binary_location = chromium
    drv = webdriver.Chrome(options=options, service=Service(driver))
    drv.implicitly_wait(0)
    yield drv
    drv.quit()


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _page_text(drv) -> str:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.TAG_NAME, "body").text


def _dismiss_dialogs(drv) -> None:
    from selenium.webdriver.common.by import By

    for button in drv.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()


def test_ui_shows_every_asset_runs_a_launch_and_shows_the_pictures_in_place(dagster_dev, browser, asset_names):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    repo = dagster_dev.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
    )
    node = repo["data"]["repositoriesOrError"]["nodes"][0]
    location = node["location"]["name"]

    # The asset graph, group by group, draws every asset of the group (membership from the server).
    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    groups: dict[str, set[str]] = {}
    for n in nodes:
        groups.setdefault(n["groupName"], set()).add("/".join(n["assetKey"]["path"]))
    assert set().union(*groups.values()) == asset_names
    for group, members in sorted(groups.items()):
        browser.get(f"{dagster_dev.url}/locations/{location}/asset-groups/{group}")
        _wait(
            lambda group=group: (
                browser.find_elements(By.XPATH, "//button[normalize-space()='Skip']") or group in _page_text(browser)
            ),
            60,
            f"the {group} page",
        )
        _dismiss_dialogs(browser)
        shot = ARTIFACTS / f"asset_graph_{group}.png"
        try:
            _wait(
                lambda members=members: all(name in _page_text(browser) for name in members),
                60,
                f"every asset of the {group} graph",
            )
        finally:
            browser.save_screenshot(str(shot))
        assert not [n for n in members if n not in _page_text(browser)], f"missing from the {group} graph; see {shot}"

    # A materialisation launched the way the UI's buttons do it (add the batch's partition, then launchRun) succeeds.
    repository = {"repositoryLocationName": location, "repositoryName": node["name"]}
    added = dagster_dev.graphql(ADD_PARTITION, {"repo": repository, "key": "generated"})["data"]["addDynamicPartition"]
    # the inbox sensor may have added the configured source's batch already
    assert added["__typename"] in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), added
    params = {
        "selector": {**repository, "jobName": "valuation"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "generated"}]},
        "runConfigData": {"ops": {"quality_calibration": {"config": {"reference_size": 36}}}},
    }
    launched = dagster_dev.graphql(LAUNCH, {"params": params})["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = _wait(
        lambda: (
            (
                s := dagster_dev.graphql(f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["data"][
                    "runOrError"
                ]["status"]
            )
            in ("SUCCESS", "FAILURE", "CANCELED")
            and s
        ),
        420,
        f"run {run_id}",
    )
    assert status == "SUCCESS", dagster_dev.log.read_text()[-3000:]

    # training_values' and quality_scores' pages show their pictures in place, without a click: short markdown
    # linking PNGs that the webserver serves from the compute logs (assets/galleries.py, `picture`).
    # (asset, its pictures' metadata keys, their files' prefix: a partitioned asset's files name the batch)
    pages = (
        ("training_values", ("histogram", "gallery"), "training_values"),
        ("quality_scores", ("q_histogram", "gallery"), "quality_scores_generated"),
    )
    for asset, names, prefix in pages:
        browser.get(f"{dagster_dev.url}/assets/{asset}")
        _wait(lambda: "gallery" in _page_text(browser), 60, f"{asset}'s metadata")
        _dismiss_dialogs(browser)
        shot = ARTIFACTS / f"{asset}_pictures.png"
        try:
            shown = _wait(
                lambda names=names: len(loaded := _loaded_pictures(browser)) >= len(names) and loaded,
                60,
                f"{asset}'s pictures, loaded",
            )
        finally:
            _screenshot_metadata(browser, shot)
        by_name = {src.rsplit("/", 2)[-2]: (src, size) for src, *size in shown}
        assert sorted(by_name) == sorted(f"{prefix}_{name}" for name in names), f"{shown}; see {shot}"
        for name in names:
            hidden = browser.find_elements(
                By.XPATH, f"//*[normalize-space()='{name}']/ancestor::tr[1]//*[normalize-space()='[Show Markdown]']"
            )
            assert not hidden, f"{asset}'s {name} is still behind a link; see {shot}"
        src, (width, height) = by_name[f"{prefix}_gallery"]
        assert width >= 2 * 64 and height >= 4 * 64, (src, width, height)  # rows of 64-px tiles, several wide
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(src, timeout=30) as resp:
            assert resp.headers["Content-Type"] == "image/png" and resp.read(8) == b"\x89PNG\r\n\x1a\n", src


def _loaded_pictures(drv) -> list:
    """[src, naturalWidth, naturalHeight] of the page's decoded images that link the compute logs' pictures."""
    return drv.execute_script(
        "return Array.from(document.images)"
        ".filter(i => i.src.includes('/logs/gmv_pictures/') && i.complete && i.naturalWidth > 0)"
        ".map(i => [i.src, i.naturalWidth, i.naturalHeight])"
    )


def _screenshot_metadata(drv, path: Path) -> None:
    """The page down to its last picture (the window is 9000 px tall for the asset graphs)."""
    bottom = drv.execute_script(
        "return Math.max(600, ...Array.from(document.images).map(i => i.getBoundingClientRect().bottom + 40))"
    )
    drv.save_screenshot(str(path))
    with Image.open(path) as full:
        full.crop((0, 0, full.width, min(full.height, int(bottom)))).save(path)


def test_a_gmv_run_is_on_the_overview_timeline_under_its_job(tmp_path, dagster_env, start_dagster_dev, browser):
    """`gmv run` executes in its own process, but its runs are the code location's (runner.py): the Overview
    timeline draws them in the job's row, as it draws the runs the webserver launched."""
    import subprocess
    import sys

    from selenium.webdriver.common.by import By

    from gmv_dagster.runner import CODE_LOCATION

    gmv = Path(sys.executable).parent / "gmv"
    done = subprocess.run(
        [str(gmv), "run", "-n", "1"], env=dagster_env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with start_dagster_dev() as server:
        browser.get(f"{server.url}/overview/activity/timeline")
        shot = ARTIFACTS / "timeline_gmv_run.png"
        try:
            _wait(lambda: "valuation" in _page_text(browser), 90, "the valuation job's row on the timeline")
            _dismiss_dialogs(browser)

            # a job has a row only where it has runs (or ticks) in the window: valuation has no schedule, so its row,
            # under the code location and linking the location's job, is gmv run's run
            def job_row() -> bool:
                hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
                return any(href.endswith(f"/locations/{CODE_LOCATION}/jobs/valuation") for href in hrefs)

            _wait(job_row, 60, "the valuation job's row, linking the job of the code location")
        finally:
            browser.save_screenshot(str(shot))
        assert "No runs or scheduled ticks in this time period" not in _page_text(browser), f"see {shot}"
