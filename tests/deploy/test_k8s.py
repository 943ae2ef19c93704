"""deploy/k8s: manifests parse, and per model a serving Deployment, Service and HPA wired to the gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from modelserver.process.cli import parse_flags
from tests.deploy.conftest import K8S_DIR, REPO_ROOT, flag_value, gateway_settings

Documents = dict[str, list[dict[str, Any]]]


def find(documents: Documents, kind: str, name: str) -> dict[str, Any]:
    for docs in documents.values():
        for doc in docs:
            if doc.get("kind") == kind and doc["metadata"].get("name") == name:
                return doc
    raise AssertionError(f"no {kind} {name} under deploy/k8s")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_every_manifest_parses_with_kind_and_name(k8s_documents: Documents) -> None:
    assert k8s_documents, "no manifests under deploy/k8s"
    for file, docs in k8s_documents.items():
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{file}: a document without apiVersion/kind"
            assert doc["metadata"].get("name") or doc["metadata"].get("generateName"), f"{file}: unnamed"


def test_kustomization_lists_every_manifest_but_the_one_shot_job(k8s_documents: Documents) -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    expected = sorted(set(k8s_documents) - {"export-job.yaml"})
    assert sorted(kustomization["resources"]) == expected


def test_serving_deployment_per_model_is_ready_only_when_available(
    k8s_documents: Documents, models: list[str]
) -> None:
    for name in models:
        deployment = find(k8s_documents, "Deployment", f"serving-{name}")
        serving = container(deployment)
        args = serving["args"]
        config = f"/models/config/{name}.config"  # the desired state on the shared volume
        assert parse_flags(args).model_config_file == config, "our modelserver must accept the same args"
        assert flag_value(args, "model_config_file") == config
        assert int(flag_value(args, "model_config_file_poll_wait_seconds")) >= 1
        probe = " ".join(serving["readinessProbe"]["exec"]["command"])
        assert f"/dev/tcp/127.0.0.1/{flag_value(args, 'rest_api_port')}" in probe
        assert f"GET /v1/models/{name} " in probe and "AVAILABLE" in probe
        mounts = {m["name"]: m for m in serving["volumeMounts"]}
        assert mounts["models"]["mountPath"] == "/models" and mounts["models"]["readOnly"] is True
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
        assert find(k8s_documents, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


def test_services_and_autoscalers_target_what_exists(k8s_documents: Documents, models: list[str]) -> None:
    for name in [f"serving-{m}" for m in models] + ["gateway"]:
        deployment = find(k8s_documents, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        service = find(k8s_documents, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items(), f"Service {name} selects no pod"
        ports = {p["name"] for p in container(deployment)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
        hpa = find(k8s_documents, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_gateway_routes_each_model_to_its_serving_service(
    k8s_documents: Documents, models: list[str]
) -> None:
    gateway = container(find(k8s_documents, "Deployment", "gateway"))
    env = {e["name"]: e for e in gateway["env"]}
    routes = json.loads(env["GATEWAY_MODEL_SERVERS"]["value"])
    for name in models:
        serving = container(find(k8s_documents, "Deployment", f"serving-{name}"))
        grpc_port = flag_value(serving["args"], "port")
        assert routes[name] == f"serving-{name}:{grpc_port}"
    assert "secretKeyRef" in env["GATEWAY_ADMIN_TOKEN"]["valueFrom"], "the token comes from a Secret"
    plain = {key: item["value"] for key, item in env.items() if "value" in item}
    settings = gateway_settings({**plain, "GATEWAY_ADMIN_TOKEN": "a-test-token-of-32-characters-xx"})
    assert settings.host == "0.0.0.0", "a pod must bind beyond loopback for probes and the Service"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sorted(str(p) for p in settings.config_files()) == sorted(
        str(REPO_ROOT / "models" / "config" / f"{name}.config") for name in models
    ), "the gateway must hold the desired state of every model"
    mounts = {m["mountPath"]: m for m in gateway["volumeMounts"]}
    assert mounts["/models/config"]["name"] == "models" and not mounts["/models/config"].get("readOnly")
    spec = find(k8s_documents, "Deployment", "gateway")["spec"]["template"]["spec"]
    claim = next(v for v in spec["volumes"] if v["name"] == "models")["persistentVolumeClaim"]["claimName"]
    assert find(k8s_documents, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    seed = " ".join(spec["initContainers"][0]["command"])
    assert "cp -n" in seed, "the seed never overwrites the live desired state"


def test_models_config_map_holds_the_seed_of_each_model_config(
    k8s_documents: Documents, models: list[str]
) -> None:
    config_map = find(k8s_documents, "ConfigMap", "models-config")
    assert sorted(config_map["data"]) == sorted(f"{name}.config" for name in models)
    for name in models:
        seed = REPO_ROOT / "models" / "config" / f"{name}.config"
        assert config_map["data"][f"{name}.config"] == seed.read_text()


def test_kustomize_renders_the_manifests() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl here")
    done = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(done.stdout) if doc]
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"} <= set(kinds)
    assert all(
        doc["metadata"].get("namespace") == "tfserve"
        for doc in yaml.safe_load_all(done.stdout)
        if doc and doc["kind"] != "Namespace"
    )
