#!/usr/bin/env bash
# The GPU path on an NVIDIA machine: the demo embedded and matched on CUDA and on the CPU, with the
# throughput of each and the values compared (bench/gpu_check.py). Run after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_check.py --device cuda "$@"
