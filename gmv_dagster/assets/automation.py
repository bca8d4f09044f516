"""Batches as partitions, and the declarative automation every derived asset follows.

An asset reruns when an input's content changed (its data version: a content hash, see
valuation/versions.py), when its code version changed, or (for a batch) when it is newly added;
never while an input is missing or in progress. Rescanning unchanged sources therefore costs
nothing downstream, and one changed batch reruns only its own partitions and the sum.
"""

import dagster as dg

AC = dg.AutomationCondition

generated_batches = dg.DynamicPartitionsDefinition(name="generated_batches")
# Every batch of a per-image asset lives in one DuckDB table, told apart by this column.
BATCH_TABLE = {"partition_expr": "batch"}

_input_changed = AC.any_deps_match(
    (AC.data_version_changed() & ~AC.executed_with_root_target()).with_label("content changed")
    | AC.will_be_requested()
).with_label("an input changed")
_ready = ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()

FOLLOWS_INPUTS = (
    (AC.newly_missing() | _input_changed | AC.code_version_changed()).since_last_handled() & _ready
).with_label("follows its inputs")

# Batches are added, and their first run requested, by the inbox sensor (or `gmv run`); automation only
# refreshes a batch's manifest when what it came from (the demo generator) or its code changed.
REFRESHES_WITH_INPUTS = ((_input_changed | AC.code_version_changed()).since_last_handled() & _ready).with_label(
    "refreshes with its inputs")
