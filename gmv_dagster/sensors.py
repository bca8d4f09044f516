"""New batches from the inbox, the scheduled revaluation, and the automation that carries changes downstream."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from .assets.automation import generated_batches
from .jobs import REPORTS
from .resources import ImageSources
from .sources.batches import COMPLETE_MARKER, scan_inbox

RUNNING = dg.DefaultSensorStatus.RUNNING


def build_inbox_sensor(interval_seconds: int, inbox: Path) -> dg.SensorDefinition:
    """The sensor over `inbox`, the folder the image_sources resource names (GMV_INBOX), named in its description."""

    @dg.sensor(
        name="inbox_sensor",
        job_name="value_batch",
        minimum_interval_seconds=interval_seconds,
        default_status=RUNNING,
        description=f"Watches {inbox} (GMV_INBOX) for batches of generated images. A folder <name> becomes the batch "
        f"<name> (a partition of generated_batches) with a value_batch run once it holds the file {COMPLETE_MARKER}, "
        "which the producer writes after its last image; until then it is being written and is left alone. Names "
        "take letters, digits, _ . - (at most 100). The configured generated source's batch is added too, without a "
        "run (materialise it from the UI or `gmv run`); a batch deleted in the UI is not added again.",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, image_sources: ImageSources) -> dg.SensorResult:
        # The cursor lists the batches already taken, so a batch deleted in the UI is not added again.
        seen = set(json.loads(context.cursor)["seen"]) if context.cursor else set()
        existing = set(context.instance.get_dynamic_partitions(generated_batches.name))
        ready, waiting = scan_inbox(image_sources.inbox_path())
        source = image_sources.source_batch
        if source in ready:
            ready.remove(source)
            waiting[source] = f"the name {source!r} is the configured generated source's batch; rename the folder"
        for folder, why in waiting.items():
            context.log.info(f"inbox {image_sources.inbox_path()}: skipping {folder}: {why}")
        new = [key for key in ready if key not in seen and key not in existing]
        add = new + ([source] if source not in seen and source not in existing else [])
        if new:
            context.log.info(f"new batches: {', '.join(new)}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=f"batch:{key}", partition_key=key, tags={"gmv/batch": key}) for key in new
            ],
            dynamic_partitions_requests=[generated_batches.build_add_request(add)] if add else [],
            cursor=json.dumps({"seen": sorted(seen | set(add))}),
        )

    return inbox_sensor


def build_revaluation_schedule(cron: str) -> dg.ScheduleDefinition:
    """Rescan the training images and the embedder on `cron`; automation recomputes only what changed."""
    return dg.ScheduleDefinition(
        name="revaluation",
        job_name="refresh_sources",
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Rescans the training images and the embedder; changed content flows downstream by automation",
    )


def build_automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the automation conditions (assets/automation.py); its description says on what."""
    return dg.AutomationConditionSensorDefinition(
        "gmv_automation",
        description="Evaluates the automation conditions of every asset but the reports (group reports: they take "
        "minutes, run them with `gmv report` or the criteria job): an asset reruns when an input's content or its "
        "code version changed, or when it is newly missing (a new batch), never while an input is missing or in "
        "progress. New batches come from inbox_sensor, rescans of the sources from the revaluation schedule.",
        target=dg.AssetSelection.all() - REPORTS,
        default_status=RUNNING,
        minimum_interval_seconds=interval_seconds,
        emit_backfills=False,
    )
