"""A training folder salted with every kind of bad file: refused naming the first (the last good tables kept),
or valued with the bad files listed as skipped, as GMV_ON_BAD_IMAGE says."""

import dagster as dg
import duckdb
import numpy as np

from gmv_dagster.runner import run_valuation


def read(home, table):
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1").pl()  # our table names, not user input


def salt(folder):
    labels = sorted(p.name for p in folder.iterdir() if p.is_dir())
    first, last = labels[0], labels[-1]
    (folder / first / "truncated.png").write_bytes((next((folder / first).glob("*.png"))).read_bytes()[:40])
    (folder / first / "empty.png").write_bytes(b"")
    (folder / last / "text.jpg").write_text("not an image")
    (folder / "README.txt").write_text("not an image either")
    return first, last


def failure(result) -> str:
    return "\n".join(e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure)


def test_salted_training_folder_refused_or_valued_as_configured(tmp_path, image_folders):
    train_dir, gen_dir = image_folders
    env = {"GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home = tmp_path / "home"
    instance = dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, env=env).success
    good = read(home, "training_values")

    first, last = salt(train_dir)
    refused = run_valuation(home, instance, env=env)
    assert not refused.success
    message = failure(refused)
    assert f"{first}/empty.png: empty file (0 bytes) (and 2 more)" in message and "GMV_ON_BAD_IMAGE=skip" in message
    assert read(home, "training_values").equals(good)  # the last good tables are intact

    skipped = run_valuation(home, instance, env={**env, "GMV_ON_BAD_IMAGE": "skip"})
    assert skipped.success
    values = read(home, "training_values")
    assert values["train_id"].to_list() == good["train_id"].to_list()  # the same 36 good images, no bad one
    np.testing.assert_array_equal(values["value"], good["value"])
    mat = instance.get_latest_materialization_event(dg.AssetKey("training_images")).asset_materialization
    assert mat.metadata["skipped_count"].value == 4
    listed = {r.data["path"].split("/train/")[-1]: r.data["reason"] for r in mat.metadata["skipped"].records}
    assert set(listed) == {f"{first}/truncated.png", f"{first}/empty.png", f"{last}/text.jpg", "README.txt"}
