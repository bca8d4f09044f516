"""Shared fixtures: small image sets that the tests make, with a known answer; a real `dagster dev`."""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from gmv_dagster.executors import free_port, local_celery_cluster, stop_group

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def make_training_set(n_per_class: int = 12, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of distinct shapes (bar, ring, cross) at random positions and widths."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label in ("bar", "ring", "cross"):
        for _ in range(n_per_class):
            cx, cy = rng.integers(7, size - 7, 2)
            w = rng.uniform(1.5, 3.5)
            if label == "bar":
                mask = np.abs(xx - cx) < w
            elif label == "ring":
                mask = np.abs(np.hypot(xx - cx, yy - cy) - 2 * w) < 1.2
            else:
                mask = (np.abs(xx - cx) < w / 2) | (np.abs(yy - cy) < w / 2)
            img = mask * rng.uniform(150, 255) + rng.normal(0, 8, (size, size))
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def perturbed_copies(train: np.ndarray, sources: np.ndarray, seed: int = 1) -> np.ndarray:
    """Generated images that are near-copies (mild noise) of chosen training images."""
    rng = np.random.default_rng(seed)
    out = train[sources].astype(np.float64) + rng.normal(0, 6, train[sources].shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> Path:
    for i, (img, label) in enumerate(zip(images, labels)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / label / f"{prefix}{i:03d}.png")
    return root


def write_batch(inbox: Path, name: str, images: np.ndarray, labels: np.ndarray, complete: bool = True) -> Path:
    """A batch as a producer writes it: images into inbox/name, then the _COMPLETE marker last."""
    folder = write_folder(inbox / name, images, labels, "g")
    if complete:
        (folder / "_COMPLETE").touch()
    return folder


def read_table(home: Path, table: str, order: str | None = None):
    """A table of the DuckDB file under `home` (GMV_HOME), ordered by the SQL `order` when given."""
    with duckdb.connect(str(home / "gmv.duckdb"), read_only=True) as con:
        # table names and orders are the tests' own, never user input
        return con.execute(f"SELECT * FROM {table}" + (f" ORDER BY {order}" if order else "")).pl()


@pytest.fixture
def read():
    """read(home, table, order=None): a stored table, as the tests compare them."""
    return read_table


@pytest.fixture(scope="session")
def known_answer():
    """(train, train_labels, generated, generated_labels, sources): generated j copies train[sources[j]]."""
    train, labels = make_training_set()
    sources = np.array([0, 5, 13, 20, 27, 33])
    return train, labels, perturbed_copies(train, sources), labels[sources], sources


@pytest.fixture
def drop_batch(known_answer):
    """drop_batch(inbox, name, sources, complete=True): near-copies of train[sources] as a producer writes a batch."""
    train, labels, *_ = known_answer

    def drop(inbox: Path, name: str, sources: list[int], complete: bool = True) -> Path:
        return write_batch(inbox, name, perturbed_copies(train, np.asarray(sources), seed=7), labels[sources], complete)

    return drop


@pytest.fixture
def image_folders(tmp_path, known_answer):
    train, labels, gen, gen_labels, _ = known_answer
    return (
        write_folder(tmp_path / "train", train, labels, "t"),
        write_folder(tmp_path / "generated", gen, gen_labels, "g"),
    )


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (.ci/run does this)")
    return FASHION_MNIST


BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def asset_names() -> set[str]:
    """Every asset the code location must define (a test fails when one appears or disappears)."""
    return {
        "training_images",
        "demo_generator",
        "generated_images",
        "similarity_model",
        "embedding_model",
        "train_embeddings",
        "generated_embeddings",
        "train_index",
        "credit_temperature",
        "matches",
        "quality_calibration",
        "training_details",
        "quality_scores",
        "credits",
        "training_values",
        "method_values",
        "method_contributors",
        "method_timings",
        "criterion_classes",
        "criterion_reasonableness",
        "criterion_diversity",
        "criterion_efficiency",
        "criterion_ood",
        "criterion_fidelity",
        "criterion_consistency",
        "criterion_lds",
        "criterion_group_lds",
        "criterion_report",
    }


@pytest.fixture
def dagster_env(tmp_path, image_folders):
    """Environment for Dagster processes: their own DAGSTER_HOME and GMV_HOME, the known-answer folders as data."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    train_dir, gen_dir = image_folders
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "GMV_HOME": str(tmp_path / "gmv_home"),
        "GMV_TRAIN_SOURCE": str(train_dir),
        "GMV_GENERATED_SOURCE": str(gen_dir),
        "GMV_SENSOR_INTERVAL": "5",
        # pixels: these processes test serving, sensors and executors, not the learned similarity (the default)
        "GMV_BACKBONE": "pixels",
    }


# The dev server is on loopback: never through a proxy (urlopen's global opener keeps the proxies it saw first).
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DevServer:
    def __init__(self, url: str, log: Path):
        self.url, self.log = url, log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with LOOPBACK.open(req, timeout=30) as resp:
            return json.loads(resp.read())

    def location_state(self) -> str:
        """The code location's load status and error, if the server answers (why no asset is served)."""
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message stack } } } } } }"
        )
        try:
            return json.dumps(self.graphql(query))[-4000:]
        except OSError as e:
            return f"no answer ({e})"


def busiest_processes() -> str:
    return subprocess.run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True).stdout[
        :3000
    ]


WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"


@contextlib.contextmanager
def serve_dagster_dev(folder: Path, env: dict):
    """`dagster dev` on README's workspace.yaml (the code location as users serve it, by its name) on a free
    loopback port, up and serving assets; stopped (its whole process group) after. Its log: folder/dev.log."""
    port = free_port()
    log = folder / "dev.log"
    # dagster dev ignores SIGINT/SIGTERM from a script unless their default handlers are restored.
    command = ["setsid", "env", "--default-signal=INT,TERM", str(BIN / "dagster"), "dev", "-w", str(WORKSPACE)]
    proc = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=folder,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    server = DevServer(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.time() + 300
        while True:
            try:
                if server.graphql("{ assetNodes { id } }")["data"]["assetNodes"]:
                    break
            except (OSError, KeyError, TypeError):
                pass
            if time.time() > deadline:
                pytest.fail(
                    f"dagster dev did not serve assets in 300 s; its code location: {server.location_state()}"
                    f"\nits log:\n{log.read_text()[-4000:]}\nbusiest processes:\n{busiest_processes()}"
                )
            time.sleep(2)
        yield server
    finally:
        stop_group(proc)


@pytest.fixture
def dagster_dev(tmp_path, dagster_env):
    with serve_dagster_dev(tmp_path, dagster_env) as server:
        yield server


@pytest.fixture
def start_dagster_dev(tmp_path, dagster_env):
    """start_dagster_dev(): the context manager of `dagster_dev`, for a test that must do something first."""
    return lambda: serve_dagster_dev(tmp_path, dagster_env)


@pytest.fixture
def celery_cluster(tmp_path, dagster_env):
    """Redis on a free loopback port and two dagster-celery workers (one process each) sharing the Dagster
    instance, GMV_HOME and two training shards of `dagster_env`; `env` runs gmv against them (workers and runs
    must see one configuration). Everything is stopped after."""
    try:
        with local_celery_cluster(tmp_path, {**dagster_env, "GMV_TRAIN_SHARDS": "2"}, workers=2) as cluster:
            yield cluster
    except RuntimeError as exc:  # redis-server missing, or the cluster did not start
        pytest.fail(str(exc))
