"""bench/gpu_check.py, the GPU session's prepared script, works here with the CPU on both sides."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "bench" / "gpu_check.py"


def test_gpu_check_compares_two_runs_and_passes_on_equal_values(tmp_path, image_folders):
    train_dir, gen_dir = image_folders
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--work", str(tmp_path / "work"),
                          "--train", str(train_dir), "--generated", str(gen_dir)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "accelerator (cpu):" in run.stdout and "train images/s" in run.stdout
    assert "max |difference| 0 " in run.stdout and "same values to tolerance" in run.stdout
    assert "ms / image" in run.stdout and "max |q difference| 0\n" in run.stdout and "same quality to tolerance" in run.stdout
