"""What a valuation was computed from, as digests cheap enough to take before anything is imported or launched:
`gmv run` with nothing new answers from the stored tables at once, and a new batch runs only its own steps.

Two parts: the digest of everything every batch depends on (the settings that change results, the run config,
the package's code, the training source's files) and one digest per batch (its files). Files are compared by
relative path, size and modification time (to the nanosecond), as make and rsync do: a file rewritten with the
same size within the same nanosecond goes unseen; `gmv run --force` runs every step regardless. Stored in
GMV_HOME/valued_inputs.json with the content version of `training_values` that the run left, so a write by
anyone else (a materialisation in the UI, a sensor's run) makes the next `gmv run` look again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..common.files import folder_files, write_atomically

STATE_FILE = "valued_inputs.json"
# Settings that choose where, when or how loudly work runs, never what it computes.
NOT_RESULTS = frozenset(
    {
        "GMV_HOME",
        "GMV_SENSOR_INTERVAL",
        "GMV_REVALUATION_CRON",
        "GMV_EXECUTOR",
        "GMV_CELERY_BROKER",
        "GMV_CELERY_BACKEND",
    }
)
PACKAGE = Path(__file__).resolve().parents[1]


def _update(h, *parts) -> None:
    for part in parts:
        h.update(str(part).encode())
        h.update(b"\x00")


def files_digest(path: str | Path | None) -> str:
    """Digest of a source's files: every file under a folder (relative path, size, mtime in ns) as the manifests list
    them (common.files.folder_files), or one file's; a source that does not exist has a digest of its own (its run
    fails, naming it)."""
    h = hashlib.sha256()
    if path is None:
        return "none"
    path = Path(path)
    if path.is_file():
        stat = path.stat()
        _update(h, path.name, stat.st_size, stat.st_mtime_ns)
    elif path.is_dir():
        for f in folder_files(path):
            _update(h, f.rel, f.size, f.mtime_ns)
    else:
        _update(h, "missing", path)
    return h.hexdigest()[:24]


def code_digest(package: Path = PACKAGE) -> str:
    """Digest of the package's Python source: any change to the code counts as a change of every result."""
    h = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        _update(h, file.relative_to(package))
        h.update(file.read_bytes())
    return h.hexdigest()[:24]


def settings_digest(env: Mapping[str, str], run_config: Mapping) -> str:
    """Digest of the GMV_* settings that change results and of the run config (its loggers left out)."""
    h = hashlib.sha256()
    for key in sorted(k for k in env if k.startswith("GMV_") and k not in NOT_RESULTS):
        _update(h, key, env[key])
    config = {k: v for k, v in run_config.items() if k != "loggers"}
    _update(h, json.dumps(config, sort_keys=True, default=str))
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class ValuationInputs:
    common: str  # what every batch depends on: settings, run config, code, training source
    batches: dict[str, str]  # batch key -> digest of its files
    values_version: str | None = None  # training_values' content version when these were valued
    run_id: str | None = None
    finished: str | None = None


Sources = Sequence[str | Path | None]  # the places a side's images come from (the demo's: where its data may be)


def sources_digest(sources: Sources) -> str:
    h = hashlib.sha256()
    _update(h, *(files_digest(source) for source in sources))
    return h.hexdigest()[:24]


def valuation_inputs(
    env: Mapping[str, str], run_config: Mapping, training: Sources, batches: Mapping[str, Sources]
) -> ValuationInputs:
    """The digests of one `gmv run`'s inputs: the settings, run config, code and training sources together; each
    batch's sources apart."""
    h = hashlib.sha256()
    _update(h, settings_digest(env, run_config), code_digest(), sources_digest(training))
    return ValuationInputs(h.hexdigest()[:24], {key: sources_digest(sources) for key, sources in batches.items()})


def read_state(home: Path) -> ValuationInputs | None:
    """The inputs of the last `gmv run` that finished, or None (none yet, or a file this version cannot read)."""
    try:
        return ValuationInputs(**json.loads((home / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(home: Path, state: ValuationInputs) -> None:
    write_atomically(home / STATE_FILE, lambda tmp: tmp.write_text(json.dumps(asdict(state), indent=1)))


@dataclass(frozen=True)
class Plan:
    """What a run must do: `everything`, or only `batches` (then the sum); neither: nothing new."""

    everything: bool
    batches: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def nothing_new(self) -> bool:
        return not self.everything and not self.batches


def plan_run(previous: ValuationInputs | None, now: ValuationInputs, values_version: str | None) -> Plan:
    """Compare this run's inputs with the last finished run's and the stored values with what it left."""
    if previous is None:
        return Plan(True, reason="no earlier run recorded in this home")
    if values_version is None or values_version != previous.values_version:
        return Plan(True, reason="training_values was written since (or is missing)")
    if previous.common != now.common:
        return Plan(True, reason="the settings, the run config, the code or the training images changed")
    gone = sorted(set(previous.batches) - set(now.batches))
    if gone:
        return Plan(True, reason=f"batch(es) no longer present: {', '.join(gone)}")
    changed = [key for key, digest in now.batches.items() if previous.batches.get(key) != digest]
    return Plan(False, changed, reason=f"new or changed batch(es): {', '.join(changed)}" if changed else "")
