"""A training folder salted with every kind of bad file: refused naming the first (the last good tables kept),
or valued with the bad files listed as skipped, as GMV_ON_BAD_IMAGE says."""

import dagster as dg
import numpy as np

from gmv_dagster.runner import run_valuation

# Pipeline mechanics, not the embedder: pixels, so that no test trains a similarity it does not look at.
PIXELS = {"GMV_BACKBONE": "pixels"}


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


def test_salted_training_folder_refused_or_valued_as_configured(tmp_path, image_folders, read):
    train_dir, gen_dir = image_folders
    env = {**PIXELS, "GMV_TRAIN_SOURCE": str(train_dir), "GMV_GENERATED_SOURCE": str(gen_dir)}
    home = tmp_path / "home"
    instance = dg.DagsterInstance.ephemeral()
    assert run_valuation(home, instance, env=env).success
    good = read(home, "training_values", "1")
    first_scan = instance.get_latest_materialization_event(dg.AssetKey("training_images")).asset_materialization
    assert (first_scan.metadata["decoded"].value, first_scan.metadata["known_unchanged"].value) == (36, 0)

    first, last = salt(train_dir)
    refused = run_valuation(home, instance, env=env)
    assert not refused.success
    message = failure(refused)
    assert f"{first}/empty.png: empty file (0 bytes) (and 2 more)" in message and "GMV_ON_BAD_IMAGE=skip" in message
    assert read(home, "training_values", "1").equals(good)  # the last good tables are intact

    skipped = run_valuation(home, instance, env={**env, "GMV_ON_BAD_IMAGE": "skip"})
    assert skipped.success
    values = read(home, "training_values", "1")
    assert values["train_id"].to_list() == good["train_id"].to_list()  # the same 36 good images, no bad one
    np.testing.assert_array_equal(values["value"], good["value"])
    mat = instance.get_latest_materialization_event(dg.AssetKey("training_images")).asset_materialization
    assert mat.metadata["skipped_count"].value == 4
    # the 36 good files were decoded by the first scan and not again; the salt is new, so it was decoded and found
    assert (mat.metadata["decoded"].value, mat.metadata["known_unchanged"].value) == (0, 36)
    listed = {r.data["path"].split("/train/")[-1]: r.data["reason"] for r in mat.metadata["skipped"].records}
    assert set(listed) == {f"{first}/truncated.png", f"{first}/empty.png", f"{last}/text.jpg", "README.txt"}


def test_invalid_config_values_are_refused_naming_the_field(tmp_path):
    """Wrong types fail run-config validation, before a run starts; out-of-range values fail as the op builds
    its config (pydantic), naming the field and the bound; wrong environment values stop the definitions."""
    import pydantic
    import pytest

    from gmv_dagster.assets.valuation.matching import TrainIndexConfig
    from gmv_dagster.assets.valuation.quality import QualityConfig
    from gmv_dagster.definitions import build_definitions
    from gmv_dagster.resources import MethodResource

    job = build_definitions(tmp_path / "home", PIXELS).resolve_job_def("valuation")
    with pytest.raises(
        dg.DagsterInvalidConfigError,
        match=r'Invalid scalar at path root:resources:method:config:candidates. Value "fifty"',
    ):
        dg.validate_run_config(job, {"resources": {"method": {"config": {"candidates": "fifty"}}}})
    for config, field, bad, bound in [
        (MethodResource, "k", 0, "greater than 0"),
        (MethodResource, "temperature", -1.0, "greater than 0"),
        (MethodResource, "connectivity", 0, "greater than 0"),
        (TrainIndexConfig, "threads", -1, "greater than or equal to 0"),
        (QualityConfig, "reference_size", 5, "greater than or equal to 10"),
    ]:
        with pytest.raises(pydantic.ValidationError, match=rf"(?s){field}.*{bound}"):
            config(**{field: bad})
    with pytest.raises(ValueError, match="GMV_TRAIN_SHARDS must be a whole number >= 1, got '0'"):
        build_definitions(tmp_path / "home", {"GMV_TRAIN_SHARDS": "0"})
    with pytest.raises(ValueError, match="GMV_EXECUTOR must be one of in_process, celery, k8s"):
        build_definitions(tmp_path / "home", {"GMV_EXECUTOR": "spark"})


def test_duplicate_files_are_counted_and_duplicate_ids_refused(tmp_path):
    import pytest
    from PIL import Image

    from gmv_dagster.assets.valuation.sources import manifest_output
    from gmv_dagster.sources.manifests import Scan, manifest_from_path

    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    for name in ("a.png", "copy_of_a.png", "b.png"):
        (image if name != "b.png" else image.rotate(90)).save(tmp_path / name)
    scan = manifest_from_path(str(tmp_path))
    out = manifest_output(dg.build_asset_context(), scan, str(tmp_path))
    assert out.value.height == 3 and out.metadata["duplicate_files"].value == 1  # two images, valued apart, counted
    twice = Scan(scan.manifest.vstack(scan.manifest.head(1)))
    with pytest.raises(ValueError, match=rf"{tmp_path}: duplicate image id 'a.png'; ids must be unique"):
        manifest_output(dg.build_asset_context(), twice, str(tmp_path))
