"""Each default written once (issue 30): the literals below appear in the package's code only where they are
defined; every other use names the constant. A second copy would drift the day one of them changes."""

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gmv_dagster"

# what -> (the literal, as a regular expression over the code, and the one line that defines it)
DEFINED_ONCE = {
    "results file": (r"[\"']gmv\.duckdb[\"']", 'DATABASE = "gmv.duckdb"'),
    # not the resource's key, "gmv_home": ...
    "default home": (r"[\"']gmv_home[\"'](?!:)", 'DEFAULT_HOME = "gmv_home"'),
    # an assignment or a default, not a comparison
    "bad-image policy": (r"(?<![=!<>])=\s*[\"']fail[\"']", 'ON_BAD_IMAGE = "fail"'),
    "quality calibration sample": (r"(?i)refer.*\b1000\b|\b1000\b.*refer", "REFERENCE_SIZE = 1000"),
}


def _code_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]  # a comment may name the value
            yield path.relative_to(PACKAGE.parent), number, code


@pytest.mark.parametrize("default", DEFINED_ONCE)
def test_a_default_is_written_once(default):
    literal, definition = DEFINED_ONCE[default]
    found = [f"{path}:{number}: {code.strip()}" for path, number, code in _code_lines() if re.search(literal, code)]
    assert len(found) == 1 and found[0].endswith(definition), (
        f"the {default} is written more than once (use the constant):\n" + "\n".join(found)
    )


def test_the_per_batch_and_sharded_asset_lists_are_the_definitions_partitioned_ones(tmp_path):
    """automation.PER_BATCH_ASSETS and TRAIN_SHARDED, the one list each that the jobs, the runner and the audit use,
    name exactly the assets partitioned by batch, and by training shard when there are shards."""
    from gmv_dagster.assets.automation import PER_BATCH_ASSETS, TRAIN_SHARDED, generated_batches
    from gmv_dagster.definitions import build_definitions

    defs = build_definitions(tmp_path / "home", {"GMV_TRAIN_SHARDS": "2"})
    graph = defs.resolve_asset_graph()
    partitioned = {
        key.to_user_string(): graph.get(key).partitions_def
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def is not None
    }
    assert {name for name, p in partitioned.items() if p == generated_batches} == set(PER_BATCH_ASSETS)
    assert {name for name, p in partitioned.items() if p != generated_batches} == set(TRAIN_SHARDED)
