"""The inbox sensor, evaluated with build_sensor_context on a real (ephemeral) Dagster instance."""

import json
import logging

import dagster as dg

from gmv_dagster.assets.automation import generated_batches
from gmv_dagster.definitions import build_definitions

# Pipeline mechanics, not the embedder: pixels, so that no test trains a similarity it does not look at.
PIXELS = {"GMV_BACKBONE": "pixels"}


class Lines(logging.Handler):
    """The messages the sensor writes to its log (context.log), as the UI shows them under the tick."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def tick(defs, instance, cursor=None):
    """(result, log lines) of one evaluation of the inbox sensor."""
    sensor = defs.get_sensor_def("inbox_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources)
    log = Lines()
    context.log.addHandler(log)
    return sensor(context), log.lines


def apply(instance, result):
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_complete_batches_become_partitions_with_runs_and_partial_ones_wait(tmp_path, image_folders, drop_batch):
    inbox = tmp_path / "inbox"
    defs = build_definitions(
        tmp_path / "home",
        env={
            **PIXELS,
            "GMV_TRAIN_SOURCE": str(image_folders[0]),
            "GMV_GENERATED_SOURCE": str(image_folders[1]),
            "GMV_INBOX": str(inbox),
        },
    )
    instance = dg.DagsterInstance.ephemeral()

    # An empty inbox: only the configured source's batch is registered, with no run.
    first, _ = tick(defs, instance)
    assert first.run_requests == []
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["generated"]]
    apply(instance, first)

    drop_batch(inbox, "b2", [2, 8])
    drop_batch(inbox, "b3-partial", [3], complete=False)
    drop_batch(inbox, "bad name!", [4])
    second, _ = tick(defs, instance, first.cursor)
    assert [(r.partition_key, r.job_name or "value_batch") for r in second.run_requests] == [("b2", "value_batch")]
    assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [["b2"]]
    assert json.loads(second.cursor)["seen"] == ["b2", "generated"]
    apply(instance, second)
    assert set(instance.get_dynamic_partitions(generated_batches.name)) == {"generated", "b2"}

    # Nothing new: no request. The partial batch is picked up once its marker appears.
    third, _ = tick(defs, instance, second.cursor)
    assert third.run_requests == [] and third.dynamic_partitions_requests == []
    (inbox / "b3-partial" / "_COMPLETE").touch()
    fourth, _ = tick(defs, instance, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["b3-partial"]

    # A batch deleted in the UI stays deleted: the cursor remembers it was taken.
    apply(instance, fourth)
    instance.delete_dynamic_partition(generated_batches.name, "b2")
    fifth, _ = tick(defs, instance, fourth.cursor)
    assert fifth.run_requests == [] and fifth.dynamic_partitions_requests == []


def test_inbox_folder_named_like_the_source_batch_is_refused(tmp_path, image_folders, drop_batch):
    inbox = tmp_path / "inbox"
    drop_batch(inbox, "generated", [2])
    defs = build_definitions(
        tmp_path / "home",
        env={
            **PIXELS,
            "GMV_TRAIN_SOURCE": str(image_folders[0]),
            "GMV_GENERATED_SOURCE": str(image_folders[1]),
            "GMV_INBOX": str(inbox),
        },
    )
    result, log = tick(defs, dg.DagsterInstance.ephemeral())
    assert result.run_requests == []
    # the source's own batch is registered (no run), and the folder is named as skipped, with why
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["generated"]]
    assert json.loads(result.cursor)["seen"] == ["generated"]
    assert len(log) == 1 and log[0].startswith(f"inbox {inbox}: skipping generated: "), log
    assert "is the configured generated source's batch; rename the folder" in log[0]


def test_revaluation_schedule_rescans_the_sources_on_the_configured_cron(tmp_path):
    defs = build_definitions(tmp_path / "home", env={"GMV_REVALUATION_CRON": "*/15 * * * *"})
    schedule = defs.get_schedule_def("revaluation")
    assert schedule.cron_schedule == "*/15 * * * *" and schedule.job_name == "refresh_sources"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    selected = defs.resolve_job_def("refresh_sources").asset_layer.executable_asset_keys
    assert {k.to_user_string() for k in selected} == {"training_images", "similarity_model", "embedding_model"}
