"""Content versions of tables: equal versions mean equal contents, so what was computed from one holds for the other.

They are the data versions Dagster records, so an asset whose inputs kept their versions need not run again, and
a rerun that reproduces its output reproduces its version.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl


def frame_version(df: pl.DataFrame) -> str:
    """sha256 (24 hex) over column names, types and values in row order; independent of the polars version."""
    h = hashlib.sha256(f"{df.height}".encode())
    for name, dtype in df.schema.items():
        h.update(f"\x00{name}:{dtype}\x00".encode())
        col = df[name]
        if dtype == pl.String or dtype == pl.Categorical:
            h.update("\x1f".join("\x1e" if v is None else v for v in col.cast(pl.String).to_list()).encode())
        elif isinstance(dtype, (pl.Array, pl.List)) or dtype.is_numeric() or dtype == pl.Boolean:
            if col.null_count():
                h.update(col.is_null().to_numpy().tobytes())
            if isinstance(dtype, pl.List):  # lengths, then the values end to end
                h.update(col.list.len().fill_null(-1).to_numpy().tobytes())
                col = col.explode()
            h.update(np.ascontiguousarray(col.to_numpy()).tobytes())
        else:
            h.update(repr(col.to_list()).encode())
    return h.hexdigest()[:24]


def manifest_version(manifest: pl.DataFrame) -> str:
    """A manifest's version: ids, image content hashes, labels, attributes (and batch); not where the files lie."""
    return frame_version(manifest.drop("uri"))


def embeddings_version(embeddings: pl.DataFrame) -> str:
    """An embeddings table's version by what determines its vectors: id, image content hash and embedder
    fingerprint, row by row. Hashing the vectors themselves costs seconds at 10^6 x 1,024, on every read."""
    return frame_version(embeddings.select("id", "content_hash", "embedder"))
