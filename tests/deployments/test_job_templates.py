"""The Docker and Kubernetes pool templates, rendered offline by their worker plugins' own job
configuration classes, accepted by a real Prefect server, and the Dockerfile's shape (no daemon here)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker.models.containers import _create_container_args
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from deployments import api
from deployments.stack import PROJECT_DIR, Stack, free_port
from deployments.templates import TEMPLATES, load_template

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIALRPATHFAKE0KEY42",
    "AWS_SECRET_ACCESS_KEY": "lrpath/fake+Secret/Value0123456789abcdefXYZ",
    "AWS_SESSION_TOKEN": "lrpathFakeSessionToken987",
}
SECRET_NAME = re.compile(r"(^|_)(KEY|SECRET|PASSWORD|TOKEN|CREDENTIALS?)(_|$)")
DEAD_API = "http://127.0.0.1:9/api"
"""A real client on a port nothing listens on: rendering must not need a server."""


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch) -> dict[str, str]:
    """Credentials in the worker's environment, which no rendered template may carry."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return FAKE_CREDENTIALS


def deployment_job_variables(name: str) -> dict[str, Any]:
    """The job variables prefect.yaml gives deployment ``name`` (anchors resolved)."""
    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    (deployment,) = [d for d in spec["deployments"] if d["name"] == name]
    return json.loads(json.dumps(deployment["work_pool"].get("job_variables", {})))


def flow_run(job_variables: dict[str, Any]) -> FlowRun:
    return FlowRun(
        flow_id=uuid.uuid4(), deployment_id=uuid.uuid4(), name="brave-otter", job_variables=job_variables
    )


def render_kubernetes(template: dict, job_variables: dict[str, Any]) -> dict[str, Any]:
    """The Job manifest the Kubernetes worker would submit for a run with these job variables."""
    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            template, job_variables, client=PrefectClient(api=DEAD_API)
        )
    )
    config.prepare_for_flow_run(flow_run(job_variables))
    return config.job_manifest


def render_docker(template: dict, job_variables: dict[str, Any]) -> dict[str, Any]:
    """What the Docker worker passes to docker-py's ``containers.create``, split by docker-py itself
    into container arguments and the ``host_config`` the daemon receives."""
    values = {
        **job_variables,
        "env": {**job_variables.get("env", {}), "PREFECT_API_URL": "http://p:4200/api"},
    }
    config = asyncio.run(
        DockerWorkerJobConfiguration.from_template_and_values(
            template, values, client=PrefectClient(api=DEAD_API)
        )
    )
    config.prepare_for_flow_run(flow_run(values))
    settings = DockerWorker(work_pool_name="lrpath-gpu")._build_container_settings(None, config)
    return _create_container_args({**settings, "version": "1.44"})


def container(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]["containers"][0]


def env_of(manifest: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(manifest)["env"]}


@pytest.mark.parametrize("nproc", [1, 8])
def test_kubernetes_version_update_requests_nproc_gpus_shm_and_the_s3_secret(nproc, fake_aws):
    variables = {**deployment_job_variables("version-update"), "nproc": nproc}
    manifest = render_kubernetes(load_template("kubernetes-gpu"), variables)
    pod = manifest["spec"]["template"]["spec"]
    resources = container(manifest)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == nproc
    assert resources["requests"]["nvidia.com/gpu"] == nproc
    env = env_of(manifest)
    assert env["LRPATH_NPROC"]["value"] == str(nproc)
    assert "LRPATH_DEVICES" not in env and "LRPATH_STRATEGY" not in env  # unset: the config decides
    (shm,) = [v for v in pod["volumes"] if v["name"] == "dshm"]
    assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"] == "16Gi"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(manifest)["volumeMounts"]
    assert container(manifest)["envFrom"] == [{"secretRef": {"name": "lrpath-s3", "optional": False}}]
    assert not any(name.startswith("AWS_") for name in env)
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and pod["nodeSelector"] == {}
    assert container(manifest)["args"] == ["python", "-m", "prefect.engine"], "prefect.yaml's command"


def test_kubernetes_variables_reach_the_manifest():
    variables = {
        **deployment_job_variables("rerun-branch"),
        "nproc": 4,
        "strategy": "fsdp",
        "s3_secret_name": "team-s3",
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [],
        "shm_size": "64Gi",
        "image": "registry.example.com/lrpath:1",
        "store": "s3://bucket/lrpath",
    }
    manifest = render_kubernetes(load_template("kubernetes-gpu"), variables)
    pod = manifest["spec"]["template"]["spec"]
    assert container(manifest)["envFrom"][0]["secretRef"]["name"] == "team-s3"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [] and pod["volumes"][0]["emptyDir"]["sizeLimit"] == "64Gi"
    assert container(manifest)["image"] == "registry.example.com/lrpath:1"
    env = env_of(manifest)
    assert env["LRPATH_STRATEGY"]["value"] == "fsdp" and env["LRPATH_STORE"]["value"] == "s3://bucket/lrpath"
    assert container(manifest)["resources"]["limits"]["nvidia.com/gpu"] == 4


def test_kubernetes_cpu_template_takes_the_secret_and_no_gpu():
    manifest = render_kubernetes(load_template("kubernetes-cpu"), deployment_job_variables("watch-incoming"))
    assert "nvidia.com/gpu" not in json.dumps(manifest)
    assert container(manifest)["envFrom"] == [{"secretRef": {"name": "lrpath-s3", "optional": False}}]


@pytest.mark.parametrize("nproc", [1, 8])
def test_docker_version_update_requests_nproc_gpus_and_shm(nproc):
    variables = {**deployment_job_variables("version-update"), "nproc": nproc}
    created = render_docker(load_template("docker-gpu"), variables)
    host = created["host_config"]
    (gpus,) = host["DeviceRequests"]
    assert gpus["Count"] == nproc and gpus["Driver"] == "nvidia" and gpus["Capabilities"] == [["gpu"]]
    assert host["ShmSize"] == 16 * 1024**3
    assert created["environment"]["LRPATH_NPROC"] == str(nproc)
    assert created["image"] == "lrpath:latest"
    assert created["command"] == "python -m prefect.engine", "prefect.yaml's command"
    assert not any(name.startswith("AWS_") for name in created["environment"])


def test_no_credential_appears_in_any_template_or_rendered_job(fake_aws):
    rendered = []
    for name in TEMPLATES:
        template = load_template(name)
        rendered.append(json.dumps(template))
        variables = {**deployment_job_variables("version-update"), "store": "s3://bucket/x"}
        if name.startswith("kubernetes"):
            rendered.append(json.dumps(render_kubernetes(template, variables)))
        else:
            rendered.append(json.dumps(render_docker(template, variables), default=str))
        env_names = template["job_configuration"]["env"]
        assert not [k for k in env_names if SECRET_NAME.search(k)], name
    text = "\n".join(rendered)
    for value in fake_aws.values():
        assert value not in text


def test_dockerfile_is_a_cuda_runtime_image_run_as_a_non_root_user_without_secrets():
    lines = [line.strip() for line in (PROJECT_DIR / "Dockerfile").read_text().splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")]
    base = next(line for line in code if line.startswith("ARG CUDA_IMAGE="))
    assert re.match(r"ARG CUDA_IMAGE=nvidia/cuda:12\.\d+(\.\d+)?-(cudnn-)?runtime-ubuntu", base)
    assert any(line.startswith("FROM ${CUDA_IMAGE}") for line in code)
    users = [line.split()[1] for line in code if line.startswith("USER ")]
    assert (
        users
        and users[-1] not in ("root", "0")
        and code.index(f"USER {users[-1]}")
        > max(i for i, line in enumerate(code) if line.startswith(("RUN ", "COPY ")))
    )
    assert any(line.startswith("WORKDIR /opt/lrpath") for line in code)
    assert any("--index-url ${TORCH_INDEX} torch==${TORCH_VERSION}" in line for line in code)
    declared = " ".join(line for line in code if line.startswith(("ENV ", "ARG ")))
    continued = [line for line in code if re.match(r"^[A-Z_]+=", line)]
    names = re.findall(r"([A-Z_]+)=", declared + " " + " ".join(continued))
    assert names and not [n for n in names if SECRET_NAME.search(n)], names
    ignored = set((PROJECT_DIR / ".dockerignore").read_text().split())
    assert {".git", ".venv", "lrpath-store", "lrpath-data", ".prefect", "**/__pycache__"} <= ignored


@pytest.mark.server
@pytest.mark.slow
def test_a_real_server_accepts_the_pools_and_a_deployment_with_nproc(tmp_path):
    """``prefect work-pool create --base-job-template`` for each template; then ``prefect deploy`` of
    version-update onto the Kubernetes pool (the server checks its job variables against the
    template's schema) and the manifest rendered from what the server stored."""
    stack = Stack(port=free_port(), home=tmp_path / "prefect", store=str(tmp_path / "store"))
    try:
        stack.start_server()
        for name, pool_type in TEMPLATES.items():
            path = Path("deployments/templates") / f"{name}.json"
            stack.run(
                "work-pool", "create", f"lrpath-{name}", "--type", pool_type, "--base-job-template", str(path)
            )
        api.ensure_variable(stack.api_url, api.STORE_VARIABLE, stack.store)
        stack.run("--no-prompt", "deploy", "--name", "version-update", "--pool", "lrpath-kubernetes-gpu")
        _, pool = api.call(stack.api_url, "GET", "/work_pools/lrpath-kubernetes-gpu")
        assert pool["type"] == "kubernetes" and pool["base_job_template"] == load_template("kubernetes-gpu")
        _, docker_pool = api.call(stack.api_url, "GET", "/work_pools/lrpath-docker-gpu")
        assert docker_pool["type"] == "docker"
        (deployment,) = api.call(stack.api_url, "POST", "/deployments/filter", {})[1]
        assert deployment["work_pool_name"] == "lrpath-kubernetes-gpu"
        assert deployment["job_variables"]["nproc"] == 1
        runs = f"/deployments/{deployment['id']}/create_flow_run"
        status, _ = api.call(stack.api_url, "POST", runs, {"job_variables": {"nproc": "eight"}})
        assert status == 422, "the server must check a run's job variables against the template"
        status, run = api.call(stack.api_url, "POST", runs, {"job_variables": {"nproc": 8}})
        assert status == 201 and run["job_variables"]["nproc"] == 8
        manifest = render_kubernetes(pool["base_job_template"], run["job_variables"])
        assert container(manifest)["resources"]["limits"]["nvidia.com/gpu"] == 8
        assert env_of(manifest)["TOKENIZERS_PARALLELISM"]["value"] == "false"
    finally:
        stack.stop()
