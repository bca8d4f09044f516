"""New batches from the inbox, the scheduled revaluation, and the automation that carries changes downstream."""

from __future__ import annotations

import json

import dagster as dg

from .assets.automation import generated_batches
from .jobs import REPORTS
from .resources import ImageSources
from .sources.batches import scan_inbox

RUNNING = dg.DefaultSensorStatus.RUNNING


def build_inbox_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="inbox_sensor", job_name="value_batch", minimum_interval_seconds=interval_seconds, default_status=RUNNING
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, image_sources: ImageSources) -> dg.SensorResult:
        """Each new complete batch in the inbox becomes a partition with a run; the configured source batch
        is added as a partition (materialise it from the UI or `gmv run`).

        The cursor lists the batches already taken, so a batch deleted in the UI is not added again.
        """
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
    """Evaluates the assets' automation conditions; reports are left to `gmv report` (they take minutes)."""
    return dg.AutomationConditionSensorDefinition(
        "gmv_automation",
        target=dg.AssetSelection.all() - REPORTS,
        default_status=RUNNING,
        minimum_interval_seconds=interval_seconds,
        emit_backfills=False,
    )
