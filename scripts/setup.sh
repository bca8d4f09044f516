#!/usr/bin/env bash
# Fresh-machine setup: the demo data (Debian's dataset-fashion-mnist) and a .venv with the project.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GMV_FASHION_MNIST_DIR:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
  else
    echo "note: Fashion-MNIST not found; run 'sudo apt-get install dataset-fashion-mnist' or set GMV_FASHION_MNIST_DIR" >&2
  fi
fi
# The browser test drives Debian's headless Chromium through its chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "note: headless Chromium not found; run 'sudo apt-get install chromium chromium-driver' for the browser test" >&2
  fi
fi
# The celery test runs a Redis broker on loopback.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  else
    echo "note: redis-server not found; run 'sudo apt-get install redis-server' for the celery test" >&2
  fi
fi
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch==2.14.1 / torchvision==0.29.1 come from this machine's local disk (see docs/DESIGN.md, "Environment").
.venv/bin/pip install -q -e '.[test]'
