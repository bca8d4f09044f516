"""The Kubernetes deployment in deploy/k8s: its configs validate against dagster-k8s, and GPUs go to the torch steps."""

import json
import re
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.execution.api import create_execution_plan
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from gmv_dagster.definitions import build_definitions

DEPLOY = Path(__file__).parents[1] / "deploy" / "k8s"
PACKAGE = Path(__file__).parents[1] / "gmv_dagster"
# The steps that run torch on large inputs ask for a GPU (NIQE runs in torch on the quality device too); credit
# and the bookkeeping assets do not.
GPU_STEPS = {
    "similarity_model",
    "train_embeddings",
    "generated_embeddings",
    "train_index",
    "credit_temperature",
    "matches",
    "demo_generator",
    "quality_calibration",
    "quality_scores",
}


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    return {**values["gmvEnv"], "GMV_HOME": str(tmp_path_factory.mktemp("k8s_home"))}


def test_every_gmv_variable_in_the_helm_values_is_read_by_the_code(cluster_env):
    read = set()
    for source in PACKAGE.rglob("*.py"):
        read |= set(re.findall(r"""\.get\(\s*["'](GMV_[A-Z_]+)["']""", source.read_text()))
    named = {k for k in cluster_env if k.startswith("GMV_")}
    assert named <= read, f"values.yaml sets variables nothing reads: {sorted(named - read)}"


def test_the_run_config_validates_for_every_job_under_the_k8s_executor(cluster_env):
    defs = build_definitions(cluster_env["GMV_HOME"], cluster_env)
    run_config = yaml.safe_load((DEPLOY / "run_config.yaml").read_text())
    jobs = ["valuation", "value_batch", "refresh_sources", "criteria", "train_shard"]
    for name in jobs:
        job = defs.resolve_job_def(name)
        assert job.executor_def.name == "k8s"
        dg.validate_run_config(job, run_config)  # raises DagsterInvalidConfigError with the offending key
    broken = {"execution": {"config": {**run_config["execution"]["config"], "max_concurent": 8}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent"):
        dg.validate_run_config(defs.resolve_job_def("valuation"), broken)


def test_the_instance_runs_each_run_as_a_kubernetes_job():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["run_launcher"]["class"] == "K8sRunLauncher"
    result = validate_config(K8sRunLauncher.config_type(), instance["run_launcher"]["config"])
    assert result.success, result.errors


@pytest.mark.parametrize("job_name", ["valuation", "train_shard"])
def test_the_torch_steps_and_only_they_get_a_gpu_in_their_pod(cluster_env, job_name):
    defs = build_definitions(cluster_env["GMV_HOME"], cluster_env)
    job = defs.resolve_job_def(job_name)
    plan = create_execution_plan(
        job, run_config={}, tags={"dagster/partition": "0-of-16" if job_name == "train_shard" else "demo"}
    )
    cfg = yaml.safe_load((DEPLOY / "run_config.yaml").read_text())["execution"]["config"]
    # The executor's own steps (dagster_k8s.executor): its config as a container context, merged with each
    # step's dagster-k8s/config tag (op tags reach the step as JSON strings), then made into a Job.
    executor_context = K8sContainerContext(
        env_config_maps=cfg["env_config_maps"],
        volume_mounts=cfg["volume_mounts"],
        volumes=cfg["volumes"],
        namespace=cfg["job_namespace"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(cfg["step_k8s_config"]),
    )
    base = DagsterK8sJobConfig(
        job_image="registry.example.com/gmv-dagster:0.1.0", dagster_home="/opt/dagster/dagster_home"
    )
    with_gpu = set()
    for step in plan.steps:
        tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in step.tags.items()}
        context = executor_context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
        k8s_job = construct_dagster_k8s_job(
            base,
            ["dagster", "api", "execute_step"],
            f"step-{step.key.replace('_', '-')}",
            user_defined_k8s_config=context.run_k8s_config,
        )
        pod = k8s_job.spec.template.spec
        resources = pod.containers[0].resources
        assert resources.limits["memory"] == "16Gi" and resources.requests["cpu"] == "2", step.key
        assert any(t.key == "nvidia.com/gpu" for t in pod.tolerations)
        if resources.limits.get("nvidia.com/gpu") == "1":
            with_gpu.add(step.key)
    expected = {s.key for s in plan.steps if s.key in GPU_STEPS}
    assert expected and with_gpu == expected
