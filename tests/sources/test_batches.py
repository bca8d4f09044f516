"""Batches of generated images: keys, the inbox, and manifests whose ids carry the batch."""

import pytest

from gmv_dagster.sources.batches import (
    batch_manifest,
    is_batch_key,
    scan_inbox,
    source_batch_key,
)
from gmv_dagster.sources.images import SourceError


def test_batch_keys_and_the_inbox(tmp_path):
    assert is_batch_key("2026-11-29_run.3") and not is_batch_key("bad name") and not is_batch_key(".hidden")
    assert source_batch_key("/data/my gen set/") == "my_gen_set" and source_batch_key("/x/samples.npz") == "samples"
    inbox = tmp_path / "inbox"
    for name, marker in (("b1", True), ("b2", False), ("no good", True)):
        (inbox / name).mkdir(parents=True)
        if marker:
            (inbox / name / "_COMPLETE").touch()
    ready, waiting = scan_inbox(inbox)
    assert ready == ["b1"] and set(waiting) == {"b2", "no good"} and "_COMPLETE" in waiting["b2"]
    assert scan_inbox(tmp_path / "missing") == ([], {})


def test_batch_manifest_prefixes_ids_with_the_batch(image_folders):
    df = batch_manifest("b7", image_folders[1]).manifest
    assert df["id"][0] == "b7/bar/g000.png" and set(df["batch"]) == {"b7"}
    with pytest.raises(SourceError, match="neither a folder"):
        batch_manifest("b8", image_folders[1] / "nope")
