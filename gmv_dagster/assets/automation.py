"""Batches as partitions, and the declarative automation every derived asset follows.

An asset reruns when an input's content changed (its data version: a content hash, see
pipeline/versions.py), when its code version changed, or (for a batch) when it is newly added;
never while an input is missing or in progress. Rescanning unchanged sources therefore costs
nothing downstream, and one changed batch reruns only its own partitions and the sum.
"""

from collections.abc import Sequence

import dagster as dg

from ..pipeline.shards import shard_keys

AC = dg.AutomationCondition

generated_batches = dg.DynamicPartitionsDefinition(name="generated_batches")
# Every batch of a per-image asset lives in one DuckDB table, told apart by this column.
BATCH_TABLE = {"partition_expr": "batch"}
# Consumers of the training side read every shard of it (or the one table when unsharded).
ALL_SHARDS = dg.AllPartitionMapping()
# The assets partitioned by batch of generated images, and the training side partitioned by shard when
# GMV_TRAIN_SHARDS > 1: named once for the jobs, the runner and the audit (tests/test_defaults_once.py checks them
# against the definitions).
PER_BATCH_ASSETS = ("generated_images", "generated_embeddings", "matches", "quality_scores", "credits")
TRAIN_SHARDED = ("train_embeddings", "train_index")
# Tables that grow with the training set, read only as wide as a consumer needs (the IO manager adds the shard column).
# Matching reads the training ids (and each vector's row) only: the vectors come memory-mapped from the vector store
# that train_embeddings writes (pipeline/vectors.py).
TRAIN_IDS = dg.AssetIn(partition_mapping=ALL_SHARDS, metadata={"columns": ["id", "vector_row"]})
# Consumers that read or show training images: their files and their classes (the galleries label tiles with them).
TRAIN_URIS = dg.AssetIn(metadata={"columns": ["id", "uri", "label"]})


def with_train_shards(assets: Sequence[dg.AssetsDefinition], n_shards: int) -> list[dg.AssetsDefinition]:
    """The assets, with the training side (TRAIN_SHARDED) split into `n_shards` static partitions.

    Each shard is a slice of the training manifest (pipeline/shards.py) with its own rows in the
    train_embeddings table (column `shard`) and its own index; one shard is the unsharded pipeline.
    """
    shards = train_shards(n_shards)
    if shards is None:
        return list(assets)

    def split(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(partitions_def=shards, metadata={**spec.metadata, "partition_expr": "shard"})

    return [
        dg.map_asset_specs(split, [a])[0] if {k.to_user_string() for k in a.keys} & set(TRAIN_SHARDED) else a
        for a in assets
    ]


def train_shards(n_shards: int) -> dg.StaticPartitionsDefinition | None:
    """The training side's partitions, one per shard (pipeline/shards.py); None when it is one table and one index."""
    return dg.StaticPartitionsDefinition(shard_keys(n_shards)) if n_shards > 1 else None


_input_changed = AC.any_deps_match(
    (AC.data_version_changed() & ~AC.executed_with_root_target()).with_label("content changed") | AC.will_be_requested()
).with_label("an input changed")
_ready = ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()

FOLLOWS_INPUTS = (
    (AC.newly_missing() | _input_changed | AC.code_version_changed()).since_last_handled() & _ready
).with_label("follows its inputs")

# Batches are added, and their first run requested, by the inbox sensor (or `gmv run`); automation only
# refreshes a batch's manifest when what it came from (the demo generator) or its code changed.
REFRESHES_WITH_INPUTS = ((_input_changed | AC.code_version_changed()).since_last_handled() & _ready).with_label(
    "refreshes with its inputs"
)
