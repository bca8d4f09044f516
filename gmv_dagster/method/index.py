"""The index over training embeddings and its lifecycle: build, extend, open, check recall.

One folder holds one index (one shard of the training images, or all of them):
- `train_index.usearch`: the HNSW graph (absent in exact mode);
- `train_index_keys.parquet`: key -> id, content hash. Keys are persistent: a training image keeps its key, so the
  index can be extended with new images and lose removed ones without a rebuild, and a key never names two images;
- `train_index.json`: the spec (mode, n, dim, HNSW parameters, embedder fingerprint, embeddings version), written
  last: it names the embeddings the files beside it were made from, and `open_index` refuses any other.
Every file is written atomically, so a killed run leaves the previous index whole. The vectors themselves are the
embeddings' (pipeline/vectors.py): an opened shard carries them memory-mapped, for the exact re-score.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from ..common.files import sha256_file, write_atomically
from .matching import IndexShard, MatchParams
from .search import HnswParams, build_hnsw, update_hnsw

INDEX_FILE = "train_index.usearch"
INDEX_KEYS = "train_index_keys.parquet"
INDEX_SPEC = "train_index.json"
KEYS_SCHEMA = {"key": pl.UInt64, "id": pl.String, "content_hash": pl.String}


@dataclass(frozen=True)
class IndexPlan:
    """How to turn the index over `previous` keys into one over the current training images."""

    keys: pl.DataFrame  # key, id, content_hash of every image in the new index
    add_keys: np.ndarray  # keys to insert (new or changed images)
    add_ids: list[str]
    remove_keys: np.ndarray  # keys of images gone or changed

    @property
    def unchanged(self) -> bool:
        return len(self.add_keys) == 0 and len(self.remove_keys) == 0


def index_plan(previous: pl.DataFrame | None, current: pl.DataFrame) -> IndexPlan:
    """Keep the keys of unchanged images, remove gone or changed ones, give new keys to the rest.

    `current` has id and content_hash; new keys continue after the largest key ever used, so a key
    never names two images.
    """
    current = current.select("id", "content_hash")
    if previous is None or previous.is_empty():
        keys = current.with_row_index("key").with_columns(pl.col("key").cast(pl.UInt64)).select(KEYS_SCHEMA.keys())
        return IndexPlan(keys, keys["key"].to_numpy(), keys["id"].to_list(), np.empty(0, dtype=np.uint64))
    kept = previous.join(current, on=["id", "content_hash"], how="semi")
    removed = previous.join(kept.select("key"), on="key", how="anti")
    new = current.join(kept.select("id"), on="id", how="anti", maintain_order="left")
    start = int(previous["key"].max()) + 1
    added = new.with_columns(key=pl.int_range(start, start + new.height, dtype=pl.UInt64)).select(KEYS_SCHEMA.keys())
    keys = pl.concat([kept.select(KEYS_SCHEMA.keys()).cast(KEYS_SCHEMA), added]).sort("key")
    return IndexPlan(keys, added["key"].to_numpy(), added["id"].to_list(), removed["key"].to_numpy().astype(np.uint64))


def rows_of_keys(keys: pl.DataFrame, ids: pl.Series) -> np.ndarray:
    """An array mapping each index key to its row in `ids` (-1 for keys of images not there)."""
    size = int(keys["key"].max()) + 1 if keys.height else 0
    rows = np.full(size, -1, dtype=np.int64)
    position = pl.DataFrame({"id": ids}).with_row_index("row").join(keys.select("id", "key"), on="id")
    rows[position["key"].to_numpy().astype(np.int64)] = position["row"].to_numpy()
    return rows


def save_index(index, path: Path) -> None:
    """Write atomically: a killed run never leaves a half-written index at `path`."""
    write_atomically(path, lambda tmp: index.save(str(tmp)))


def load_index(path: Path, params: HnswParams, view: bool = False):
    """The index saved at `path`; with `view`, memory-mapped read-only (searching touches the pages it needs: a
    search of a few queries costs neither reading nor holding an index that grows with the training set)."""
    from usearch.index import Index

    if not path.is_file():
        raise FileNotFoundError(f"usearch index {path} does not exist: rematerialise train_index")
    index = Index.restore(str(path), view=view)
    index.expansion_search = params.expansion_search
    return index


def index_spec(match: MatchParams, hnsw: HnswParams, train: np.ndarray, embedder: str, embeddings_version: str) -> dict:
    """What an index is made of and from: exact or HNSW (by `match`'s rule for this n), parameters, embeddings."""
    return {
        "mode": "exact" if match.uses_exact(len(train)) else "hnsw",
        "n": len(train),
        "dim": int(train.shape[1]),
        "params": hnsw.as_dict(),
        "embedder": embedder,
        "embeddings_version": embeddings_version,
    }


@dataclass
class IndexBuild:
    """The outcome of `build_or_extend`: the index as a searchable shard, and what was done to get it."""

    spec: dict
    action: str  # built | extended: +a -r | unchanged | exact
    shard: IndexShard
    seconds: float
    version: str  # content version: hash of the index files (HNSW) or of the spec (exact)


def _previous_index(folder: Path, spec: dict):
    """(spec, keys, index) of the index on disk when it was built the way `spec` asks, else None."""
    try:
        previous = json.loads((folder / INDEX_SPEC).read_text())
        if previous.get("mode") != "hnsw" or any(previous.get(k) != spec[k] for k in ("params", "dim", "embedder")):
            return None
        keys = pl.read_parquet(folder / INDEX_KEYS)
        index = load_index(folder / INDEX_FILE, HnswParams(**spec["params"]))
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
        return None
    return (previous, keys, index) if len(index) == keys.height else None


def build_or_extend(
    folder: Path, spec: dict, train: np.ndarray, images: pl.DataFrame, threads: int = 1, rebuild: bool = False
) -> IndexBuild:
    """The index `spec` describes over `train` (rows of `images`: id, content_hash), saved under `folder`.

    Kept as it is when the index on disk was made from the same embeddings; extended (new images added, gone or
    changed ones removed) when only the embeddings changed; built anew otherwise, or with `rebuild`.
    """
    start = time.perf_counter()
    shard: IndexShard = IndexShard(0, len(train))
    if spec["mode"] == "hnsw":
        previous = None if rebuild else _previous_index(folder, spec)
        current = images.select("id", "content_hash")
        if previous is not None and previous[0]["embeddings_version"] == spec["embeddings_version"]:
            action, keys, index = "unchanged", previous[1], previous[2]
        elif previous is not None:
            plan = index_plan(previous[1], current)
            rows = rows_of_keys(plan.keys, images["id"])[plan.add_keys.astype(np.int64)]
            index = update_hnsw(previous[2], plan.add_keys, train[rows], plan.remove_keys, threads)
            action, keys = f"extended: +{len(plan.add_keys)} -{len(plan.remove_keys)}", plan.keys
        else:
            plan = index_plan(None, current)
            index = build_hnsw(train, HnswParams(**spec["params"]), threads)
            action, keys = "built", plan.keys
        seconds = time.perf_counter() - start
        if action != "unchanged":
            save_index(index, folder / INDEX_FILE)
            write_atomically(folder / INDEX_KEYS, keys.write_parquet)
        shard = IndexShard(0, len(train), index, rows_of_keys(keys, images["id"]))
        version = sha256_file(folder / INDEX_FILE, folder / INDEX_KEYS)[:24]
    else:
        action, seconds = "exact", time.perf_counter() - start
        version = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]
    # The spec goes last: it names the embeddings the files on disk were made from.
    write_atomically(folder / INDEX_SPEC, lambda p: p.write_text(json.dumps(spec)))
    return IndexBuild(spec, action, replace(shard, vectors=train), seconds, version)


def open_index(
    folder: Path,
    ids: pl.Series,
    embeddings_version: str,
    vectors: np.ndarray,
    start: int = 0,
    label: str = "train_index",
) -> tuple[dict, IndexShard]:
    """(spec, shard) of the index saved in `folder` for the training rows `ids` (at `start` among all training rows),
    whose embeddings are `vectors` (memory-mapped: pipeline/vectors.py).

    Refuses an index made from other embeddings than these (`embeddings_version`): its values would be wrong.
    """
    spec_path = folder / INDEX_SPEC
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path} does not exist: materialise {label}")
    spec = json.loads(spec_path.read_text())
    if spec.get("embeddings_version") != embeddings_version or spec.get("n") != len(ids):
        raise ValueError(
            f"{label} was made from other training embeddings ({spec.get('n')} x {spec.get('dim')}) "
            f"than the current ones ({len(ids)}): rematerialise train_index"
        )
    index = key_rows = None
    if spec["mode"] == "hnsw":
        index = load_index(folder / INDEX_FILE, HnswParams(**spec["params"]), view=True)
        key_rows = rows_of_keys(pl.read_parquet(folder / INDEX_KEYS), ids)
    return spec, IndexShard(start, start + len(ids), index, key_rows, vectors)
