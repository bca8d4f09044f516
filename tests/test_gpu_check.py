"""bench/gpu_check.py, the GPU session's prepared script. No GPU here: its "accelerator" run is on the CPU too, so
this checks only the script's plumbing (two valuations, their comparison and its verdict), never a GPU's numbers."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import polars as pl

SCRIPT = Path(__file__).parents[1] / "bench" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_cpu_against_cpu_checks_only_the_plumbing(tmp_path, image_folders, monkeypatch, capsys):
    """Equal runs pass with difference 0; then the same two runs (each valued once) with the "accelerator" side
    moved on purpose: a move within the tolerances passes and is reported as its size, one beyond them fails (exit 1)
    and says DIFFERENT, for the values and for the quality scores."""
    check = load_script()
    work = tmp_path / "work"
    monkeypatch.setenv("GMV_BACKBONE", "pixels")  # the plumbing, not the learned similarity
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "gpu_check.py",
            "--device",
            "cpu",
            "--work",
            str(work),
            "--train",
            str(image_folders[0]),
            "--generated",
            str(image_folders[1]),
        ],
    )
    runs: dict[Path, tuple] = {}
    valued = check.value

    def value_once(home, env):
        if home not in runs:
            runs[home] = valued(home, env)
        return runs[home]

    monkeypatch.setattr(check, "value", value_once)
    assert check.main() == 0
    out = capsys.readouterr().out
    assert "accelerator (cpu):" in out and "train images/s" in out
    assert "max |difference| 0 " in out and "same values to tolerance" in out
    assert "ms / image" in out and "max |q difference| 0\n" in out and "same quality to tolerance" in out
    assert set(runs) == {work / "accelerator", work / "cpu"}

    accelerator = work / "accelerator"
    values, figures, seconds = runs[accelerator]
    scale = float(values["value"].abs().max())
    scored = check.quality_on

    def moved(value_shift: float, q_shift: float):
        """The accelerator's value of training row 3 up by `value_shift` x the max value, its q of image 1 by
        `q_shift` (quality_on is called for the accelerator first, then for the CPU)."""
        runs[accelerator] = (
            values.with_columns(
                value=pl.when(pl.int_range(pl.len()) == 3)
                .then(pl.col("value") + value_shift * scale)
                .otherwise("value")
            ),
            figures,
            seconds,
        )
        calls = []

        def quality_on(home, device):
            q, ms = scored(home, device)
            calls.append(device)
            return (q + q_shift * (np.arange(len(q)) == 1) if len(calls) == 1 else q), ms

        monkeypatch.setattr(check, "quality_on", quality_on)
        code = check.main()
        assert len(calls) == 2
        return code, capsys.readouterr().out

    code, out = moved(0.0005, 0.0005)  # the tolerances are 1e-3 (of the max value) and 1e-3 (of q)
    assert code == 0, out
    assert f"max |difference| {0.0005 * scale:.3g} " in out and "same values to tolerance" in out
    assert "max |q difference| 0.0005\n" in out and "same quality to tolerance" in out
    code, out = moved(0.002, 0.002)
    assert code == 1, out
    assert (
        f"max |difference| {0.002 * scale:.3g} " in out and "DIFFERENT: max |difference| above 0.001 x max value" in out
    )
    assert "max |q difference| 0.002\n" in out and "DIFFERENT: max |q difference| above 0.001" in out
    code, out = moved(0.0, 0.002)  # each verdict on its own: equal values, different quality still fail
    assert code == 1 and "same values to tolerance" in out and "DIFFERENT: max |q difference|" in out, out
