"""The workload objects of the shipped manifests use only fields Kubernetes defines, with values of the right type.

The API server emulator does not serve Jobs, Pods, PodTemplates, Deployments, StatefulSets or Services, so these
objects cannot be applied in the tests. This check stands in for the API server's schema on the fields that
matter here: every key at the levels listed below must be a field of that Kubernetes type (a typo such as
``volumeMount`` or ``restartpolicy`` fails), and the rules the API server enforces on them that the manifests
could break (selectors matching their template, Job restart policy, quantities, ports, names) hold.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_schemas.quantity import parse_quantity

ROOT = Path(__file__).resolve().parents[2] / "manifests" / "volumes"
FILES = sorted(p for p in ROOT.rglob("*.yaml") if p.name != "thresholds.yaml")
WORKLOADS = {"Job", "Pod", "PodTemplate", "Deployment", "StatefulSet", "Service"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Field names of the Kubernetes API types (core/v1, apps/v1, batch/v1) at the levels the manifests use.
OBJECT = {"apiVersion", "kind", "metadata", "spec"}
POD_TEMPLATE_OBJECT = {"apiVersion", "kind", "metadata", "template"}
TEMPLATE = {"metadata", "spec"}
METADATA = {"name", "namespace", "labels", "annotations", "generateName", "finalizers", "ownerReferences"}
POD_SPEC = {
    "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig", "dnsPolicy",
    "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostUsers",
    "hostname", "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os", "overhead",
    "preemptionPolicy", "priority", "priorityClassName", "readinessGates", "resourceClaims", "restartPolicy",
    "runtimeClassName", "schedulerName", "schedulingGates", "securityContext", "serviceAccount",
    "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
    "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints", "volumes",
}  # fmt: skip
CONTAINER = {
    "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name", "ports",
    "readinessProbe", "resizePolicy", "resources", "restartPolicy", "securityContext", "startupProbe", "stdin",
    "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices", "volumeMounts",
    "workingDir",
}  # fmt: skip
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation", "appArmorProfile", "capabilities", "privileged", "procMount",
    "readOnlyRootFilesystem", "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxOptions", "seccompProfile",
    "windowsOptions",
}  # fmt: skip
POD_SECURITY = {
    "appArmorProfile", "fsGroup", "fsGroupChangePolicy", "runAsGroup", "runAsNonRoot", "runAsUser",
    "seLinuxOptions", "seccompProfile", "supplementalGroups", "supplementalGroupsPolicy", "sysctls",
    "windowsOptions",
}  # fmt: skip
VOLUME_MOUNT = {
    "mountPath",
    "mountPropagation",
    "name",
    "readOnly",
    "recursiveReadOnly",
    "subPath",
    "subPathExpr",
}
ENV_VAR = {"name", "value", "valueFrom"}
RESOURCES = {"claims", "limits", "requests"}
CONTAINER_PORT = {"containerPort", "hostIP", "hostPort", "name", "protocol"}
VOLUME_SOURCES = {
    "persistentVolumeClaim": {"claimName", "readOnly"},
    "emptyDir": {"medium", "sizeLimit"},
    "configMap": {"defaultMode", "items", "name", "optional"},
}
AFFINITY = {"nodeAffinity", "podAffinity", "podAntiAffinity"}
JOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode", "completions", "managedBy",
    "manualSelector", "maxFailedIndexes", "parallelism", "podFailurePolicy", "podReplacementPolicy", "selector",
    "successPolicy", "suspend", "template", "ttlSecondsAfterFinished",
}  # fmt: skip
DEPLOYMENT_SPEC = {
    "minReadySeconds", "paused", "progressDeadlineSeconds", "replicas", "revisionHistoryLimit", "selector",
    "strategy", "template",
}  # fmt: skip
STATEFUL_SET_SPEC = {
    "minReadySeconds", "ordinals", "persistentVolumeClaimRetentionPolicy", "podManagementPolicy", "replicas",
    "revisionHistoryLimit", "selector", "serviceName", "template", "updateStrategy", "volumeClaimTemplates",
}  # fmt: skip
CLAIM_TEMPLATE = {"metadata", "spec"}
CLAIM_SPEC = {"accessModes", "dataSource", "dataSourceRef", "resources", "selector", "storageClassName",
              "volumeAttributesClassName", "volumeMode", "volumeName"}  # fmt: skip
SERVICE_SPEC = {
    "allocateLoadBalancerNodePorts", "clusterIP", "clusterIPs", "externalIPs", "externalName",
    "externalTrafficPolicy", "healthCheckNodePort", "internalTrafficPolicy", "ipFamilies", "ipFamilyPolicy",
    "loadBalancerClass", "loadBalancerIP", "loadBalancerSourceRanges", "ports", "publishNotReadyAddresses",
    "selector", "sessionAffinity", "sessionAffinityConfig", "trafficDistribution", "type",
}  # fmt: skip
SERVICE_PORT = {"appProtocol", "name", "nodePort", "port", "protocol", "targetPort"}


def _workloads() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in WORKLOADS:
                out.append((f"{path.relative_to(ROOT)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def _fields(where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    assert isinstance(value, dict), f"{where}: expected an object"
    unknown = set(value) - allowed
    assert not unknown, f"{where}: no such field(s) {sorted(unknown)}"
    return value


def _check_pod_spec(where: str, spec: Any, *, job: bool) -> None:
    spec = _fields(f"{where}.spec", spec, POD_SPEC)
    if job:
        assert spec.get("restartPolicy") in ("Never", "OnFailure"), f"{where}: a Job's pods must not restart"
    if "securityContext" in spec:
        _fields(f"{where}.securityContext", spec["securityContext"], POD_SECURITY)
    if "affinity" in spec:
        _fields(f"{where}.affinity", spec["affinity"], AFFINITY)
    volumes = {}
    for volume in spec.get("volumes", []):
        sources = set(volume) - {"name"}
        assert len(sources) == 1, f"{where}: volume {volume.get('name')} needs exactly one source: {sources}"
        (source,) = sources
        assert source in VOLUME_SOURCES, f"{where}: volume source {source} is not one this check knows"
        _fields(f"{where}.volumes[{volume['name']}].{source}", volume[source], VOLUME_SOURCES[source])
        if "sizeLimit" in volume[source]:
            parse_quantity(volume[source]["sizeLimit"])
        assert DNS_LABEL.match(volume["name"]), volume["name"]
        volumes[volume["name"]] = volume
    containers = spec["containers"]
    assert containers, f"{where}: a pod needs a container"
    for container in containers:
        container = _fields(f"{where}.containers", container, CONTAINER)
        name = container["name"]
        at = f"{where}.containers[{name}]"
        assert DNS_LABEL.match(name), at
        assert isinstance(container["image"], str), at
        assert container["image"], at
        for key in ("command", "args"):
            assert all(isinstance(arg, str) for arg in container.get(key, [])), f"{at}.{key}: strings only"
        for env in container.get("env", []):
            _fields(f"{at}.env", env, ENV_VAR)
            assert isinstance(env.get("value", ""), str), f"{at}.env[{env['name']}]: values are strings"
        for mount in container.get("volumeMounts", []):
            _fields(f"{at}.volumeMounts", mount, VOLUME_MOUNT)
            assert mount["mountPath"].startswith("/"), at
        for port in container.get("ports", []):
            _fields(f"{at}.ports", port, CONTAINER_PORT)
            assert isinstance(port["containerPort"], int), at
            assert 0 < port["containerPort"] < 65536, at
        if "securityContext" in container:
            _fields(f"{at}.securityContext", container["securityContext"], CONTAINER_SECURITY)
        resources = _fields(f"{at}.resources", container.get("resources", {}), RESOURCES)
        for kind in ("requests", "limits"):
            for resource, quantity in resources.get(kind, {}).items():
                parse_quantity(quantity)
                request = resources.get("requests", {}).get(resource)
                if kind == "limits" and request is not None:
                    assert parse_quantity(request) <= parse_quantity(quantity), f"{at}: request above limit"


def _check_template(where: str, spec: dict[str, Any], *, job: bool) -> dict[str, Any]:
    template = _fields(f"{where}.template", spec["template"], TEMPLATE)
    _fields(f"{where}.template.metadata", template.get("metadata", {}), METADATA)
    _check_pod_spec(f"{where}.template", template["spec"], job=job)
    labels = template.get("metadata", {}).get("labels", {})
    selector = spec.get("selector", {}).get("matchLabels")
    if selector is not None:
        assert selector.items() <= labels.items(), (
            f"{where}: the selector must match the pod template's labels"
        )
    return template


WORKLOAD_OBJECTS = _workloads()


def test_the_manifests_hold_every_kind_of_workload_checked_here():
    assert {doc["kind"] for _, doc in WORKLOAD_OBJECTS} == WORKLOADS - {"Pod"}
    jobs = [where for where, doc in WORKLOAD_OBJECTS if doc["kind"] == "Job"]
    assert len(jobs) == 3 * 3 + 3 + 2 + 1, "suite: 3 per class; attachment: 1 per class, 2 shared, 1 memory"


@pytest.mark.parametrize(("where", "doc"), WORKLOAD_OBJECTS, ids=[w for w, _ in WORKLOAD_OBJECTS])
def test_workload_objects_use_only_kubernetes_fields(where, doc):
    kind = doc["kind"]
    _fields(where, doc, POD_TEMPLATE_OBJECT if kind == "PodTemplate" else OBJECT)
    _fields(f"{where}.metadata", doc["metadata"], METADATA)
    if kind == "PodTemplate":
        template = _fields(f"{where}.template", doc["template"], TEMPLATE)
        _check_pod_spec(f"{where}.template", template["spec"], job=False)
    elif kind == "Pod":
        _check_pod_spec(where, doc["spec"], job=False)
    elif kind == "Job":
        spec = _fields(f"{where}.spec", doc["spec"], JOB_SPEC)
        _check_template(where, spec, job=True)
        assert isinstance(spec.get("backoffLimit", 6), int)
    elif kind == "Deployment":
        spec = _fields(f"{where}.spec", doc["spec"], DEPLOYMENT_SPEC)
        _check_template(where, spec, job=False)
    elif kind == "StatefulSet":
        spec = _fields(f"{where}.spec", doc["spec"], STATEFUL_SET_SPEC)
        _check_template(where, spec, job=False)
        for claim in spec.get("volumeClaimTemplates", []):
            _fields(f"{where}.volumeClaimTemplates", claim, CLAIM_TEMPLATE)
            _fields(f"{where}.volumeClaimTemplates.spec", claim["spec"], CLAIM_SPEC)
    else:
        spec = _fields(f"{where}.spec", doc["spec"], SERVICE_SPEC)
        for port in spec.get("ports", []):
            _fields(f"{where}.ports", port, SERVICE_PORT)
            assert isinstance(port["port"], int), where
            assert 0 < port["port"] < 65536, where


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda job: job["spec"]["template"]["spec"].update(restartpolicy="Never"),
            r"no such field.*restartpolicy",
        ),
        (
            lambda job: job["spec"]["template"]["spec"]["containers"][0].update(
                volumeMount=job["spec"]["template"]["spec"]["containers"][0].pop("volumeMounts")
            ),
            r"no such field.*volumeMount",
        ),
        (lambda job: job["spec"]["template"]["spec"].update(restartPolicy="Always"), "must not restart"),
        (lambda job: job["spec"]["template"]["spec"]["containers"][0]["env"][0].update(value=5), "strings"),
    ],
)
def test_the_check_catches_typos_and_broken_rules(mutate, message):
    (where, job) = next((w, d) for w, d in WORKLOAD_OBJECTS if d["kind"] == "Job")
    broken = copy.deepcopy(job)
    mutate(broken)
    with pytest.raises(AssertionError, match=message):
        test_workload_objects_use_only_kubernetes_fields(where, broken)
