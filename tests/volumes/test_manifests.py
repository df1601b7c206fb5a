"""Every shipped volume manifest is valid, consistent with the others, and says what the volume guide promises."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from couchestor.errors import UserError
from couchestor.tiering.policy import PolicyRules, compile_policy
from couchestor.volumes import attachment, suite
from couchestor.volumes.thresholds import default_thresholds, parse_thresholds
from k8s_schemas.quantity import parse_quantity
from k8s_schemas.storage_policy import StoragePolicy

ROOT = Path(__file__).resolve().parents[2] / "manifests" / "volumes"
FILES = sorted(p for p in ROOT.rglob("*.yaml") if p.name != "thresholds.yaml")
MAYASTOR = "io.openebs.csi-mayastor"
NFS = "openebs.io/nfsrwx"
WORKLOAD_LABEL = "storage.billyronks.io/workload"
TIERING_LABEL = "storage.billyronks.io/tiering"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@functools.cache
def _documents(path: Path) -> list[dict[str, Any]]:
    """The file's objects (parsed once; tests only read them)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _all(kind: str, *directories: str) -> list[tuple[Path, dict[str, Any]]]:
    paths = [p for p in FILES if not directories or p.parent.name in directories]
    return [(p, doc) for p in paths for doc in _documents(p) if doc["kind"] == kind]


def _storage_classes() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _all("StorageClass")}


def _claims(*directories: str) -> list[tuple[Path, dict[str, Any]]]:
    """Every PVC, including the volumeClaimTemplates of StatefulSets."""
    claims = _all("PersistentVolumeClaim", *directories)
    for path, sts in _all("StatefulSet", *directories):
        claims += [(path, template) for template in sts["spec"].get("volumeClaimTemplates", [])]
    return claims


def test_the_promised_files_exist():
    names = {str(p.relative_to(ROOT)) for p in FILES}
    assert {
        "templates/storage-classes.yaml",
        "templates/compute-workload-pv.yaml",
        "templates/data-storage-pv.yaml",
        "templates/backup-pv.yaml",
        "templates/memory-storage.yaml",
        "examples/ai-workload-with-storage.yaml",
        "examples/distributed-storage.yaml",
        "examples/storage-policy.yaml",
        "tests/volume-attachment-tests.yaml",
        "tests/automated-test-suite.yaml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_object_has_api_version_kind_and_a_valid_name(path):
    documents = _documents(path)
    assert documents
    for doc in documents:
        api = doc["apiVersion"]
        assert api == "v1" or re.match(r"^[a-z0-9.-]+/v[0-9]+([a-z]+[0-9]+)?$", api), api
        assert isinstance(doc.get("kind"), str)
        assert doc["kind"][0].isupper()
        name = doc["metadata"]["name"]
        limit = 253 if doc["kind"] in ("StorageClass", "StoragePolicy", "ConfigMap", "PodTemplate") else 63
        assert len(name) <= limit, name
        assert re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name), name
        for key, value in (doc["metadata"].get("labels") or {}).items():
            assert isinstance(value, str), key
            assert len(value) <= 63, (key, value)


def test_storage_classes_cover_the_tiers_and_no_memory_class_pretends_to_exist():
    classes = _storage_classes()
    assert {"fast-ssd", "standard-storage", "backup-storage"} <= set(classes)
    assert "memory-storage" not in classes
    for name in ("fast-ssd", "standard-storage", "backup-storage"):
        sc = classes[name]
        assert sc["provisioner"] == MAYASTOR
        params = sc["parameters"]
        assert all(isinstance(v, str) for v in params.values()), "StorageClass parameters are strings"
        assert params["protocol"] == "nvmf"
        assert int(params["repl"]) >= 1
        assert params["fsType"] in ("ext4", "xfs", "btrfs")
        topology = {k for k in params if "Topology" in k}
        assert len(topology) == 1, "Mayastor takes one topology parameter per class"
        assert topology <= {"poolAffinityTopologyLabel", "poolHasTopologyKey"}
        assert sc["metadata"]["labels"]["storage.billyronks.io/tier"] in ("hot", "cold", "tiered")
    assert yaml.safe_load(classes["fast-ssd"]["parameters"]["poolAffinityTopologyLabel"]) == {"tier": "hot"}
    assert yaml.safe_load(classes["backup-storage"]["parameters"]["poolAffinityTopologyLabel"]) == {
        "tier": "cold"
    }
    assert classes["backup-storage"]["reclaimPolicy"] == "Retain"


def test_shared_classes_are_nfs_exports_of_shipped_mayastor_classes():
    classes = _storage_classes()
    shared = {name: sc for name, sc in classes.items() if sc["provisioner"] == NFS}
    assert shared
    for sc in shared.values():
        config = yaml.safe_load(sc["metadata"]["annotations"]["cas.openebs.io/config"])
        backend = {item["name"]: item["value"] for item in config}["BackendStorageClass"]
        assert classes[backend]["provisioner"] == MAYASTOR


def test_every_claim_uses_a_shipped_class_with_an_access_mode_it_serves():
    classes = _storage_classes()
    claims = _claims()
    assert len(claims) >= 10
    for path, claim in claims:
        sc = classes.get(claim["spec"]["storageClassName"])
        assert sc is not None, (path.name, claim["metadata"]["name"])
        if sc["provisioner"] == MAYASTOR:
            # Mayastor's CSI controller accepts single-node modes only.
            assert set(claim["spec"]["accessModes"]) <= {"ReadWriteOnce", "ReadWriteOncePod"}, claim
        parse_quantity(claim["spec"]["resources"]["requests"]["storage"])


def test_template_and_example_claims_carry_the_labels_policies_select_on():
    for path, claim in _claims("templates", "examples"):
        labels = claim["metadata"].get("labels", {})
        assert labels.get(WORKLOAD_LABEL), (path.name, claim["metadata"]["name"])
        assert labels.get(TIERING_LABEL) in ("managed", "pinned"), (path.name, claim["metadata"]["name"])
        # Tiering is only meaningful on the tiered class (directly or as an NFS backend).
        if labels[TIERING_LABEL] == "pinned":
            assert claim["spec"]["storageClassName"] not in ("standard-storage", "standard-storage-shared")


def _claim(file: str, name: str) -> dict[str, Any]:
    (claim,) = [c for p, c in _claims() if p.name == file and c["metadata"]["name"] == name]
    return claim


def _shape(claim: dict[str, Any]) -> tuple[str, set[str], int]:
    spec = claim["spec"]
    return (
        spec["storageClassName"],
        set(spec["accessModes"]),
        parse_quantity(spec["resources"]["requests"]["storage"]),
    )


def test_templates_are_what_the_volume_guide_describes():
    gi, ti = 1024**3, 1024**4
    assert _shape(_claim("compute-workload-pv.yaml", "compute-workload-data")) == (
        "fast-ssd",
        {"ReadWriteOnce"},
        100 * gi,
    )
    assert _shape(_claim("data-storage-pv.yaml", "data-storage")) == (
        "standard-storage",
        {"ReadWriteOnce"},
        500 * gi,
    )
    assert _shape(_claim("data-storage-pv.yaml", "data-storage-shared")) == (
        "standard-storage-shared",
        {"ReadWriteMany"},
        500 * gi,
    )
    assert _shape(_claim("backup-pv.yaml", "backup-volume")) == ("backup-storage", {"ReadWriteOnce"}, ti)
    archive_class, archive_modes, archive_size = _shape(_claim("backup-pv.yaml", "backup-archive"))
    assert "ReadOnlyMany" in archive_modes
    assert archive_size == ti
    assert _storage_classes()[archive_class]["reclaimPolicy"] == "Retain"


def test_memory_storage_is_a_memory_backed_empty_dir():
    ((_, template),) = _all("PodTemplate")
    assert template["metadata"]["name"] == "memory-storage"
    (volume,) = template["template"]["spec"]["volumes"]
    assert volume["emptyDir"]["medium"] == "Memory"
    size = parse_quantity(volume["emptyDir"]["sizeLimit"])
    (container,) = template["template"]["spec"]["containers"]
    assert parse_quantity(container["resources"]["limits"]["memory"]) > size


def test_pods_mount_only_claims_defined_alongside_them():
    for path in FILES:
        documents = _documents(path)
        claims = {d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"}
        for doc in documents:
            spec = doc.get("spec", {})
            pod = spec.get("template", {}).get("spec") if doc["kind"] != "Pod" else spec
            if doc["kind"] == "PodTemplate":
                pod = doc["template"]["spec"]
            if not pod:
                continue
            templates = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
            volumes = {v["name"] for v in pod.get("volumes", [])} | templates
            for volume in pod.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, (path.name, volume)
            for container in pod["containers"]:
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes, (path.name, doc["metadata"]["name"], mount)


def _backing_claim(claim: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The claim the OpenEBS NFS provisioner creates to serve ``claim``: ``nfs-pvc-<uid>`` in its own namespace,
    of the NFS class's backend class, labelled with the claim it serves (and not with the claim's labels)."""
    shared_class = _storage_classes()[claim["spec"]["storageClassName"]]
    config = yaml.safe_load(shared_class["metadata"]["annotations"]["cas.openebs.io/config"])
    backend = {item["name"]: item["value"] for item in config}["BackendStorageClass"]
    return {
        "metadata": {
            "name": "nfs-pvc-0f1e2d3c",
            "namespace": "openebs",
            "labels": {
                "nfs.openebs.io/nfs-pvc-name": claim["metadata"]["name"],
                "nfs.openebs.io/nfs-pvc-uid": "0f1e2d3c",
                "nfs.openebs.io/nfs-pvc-namespace": namespace,
            },
        },
        "spec": {"storageClassName": backend, "accessModes": ["ReadWriteOnce"]},
    }


def test_example_policies_are_valid_and_tier_exactly_the_managed_example_volumes():
    """Every example claim labelled ``tiering: managed`` is tiered by exactly one policy (directly, or through
    the volume behind it when it is shared over NFS), and no other example volume is selected by any."""
    crd = yaml.safe_load((ROOT.parent / "crds" / "storagepolicies.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    policies = _all("StoragePolicy")
    assert len(policies) == 2
    rules = []
    for _, document in policies:
        assert set(document["spec"]) <= set(schema), "every field is one the CRD declares"
        assert "namespace" not in document["metadata"], "StoragePolicy is cluster-scoped"
        compiled = compile_policy(msgspec.convert(document, StoragePolicy))
        assert isinstance(compiled, PolicyRules), compiled
        assert _storage_classes()[compiled.scope.storage_class]["provisioner"] == MAYASTOR
        rules.append(compiled)

    classes = _storage_classes()
    tiered: dict[str, list[str]] = {}
    for _, claim in _claims("examples"):
        volume = claim
        if classes[claim["spec"]["storageClassName"]]["provisioner"] == NFS:
            volume = _backing_claim(claim, "ai-platform")  # the namespace the examples are applied to
        tiered[claim["metadata"]["name"]] = [
            rule.name
            for rule in rules
            if rule.scope.selects(volume["spec"]["storageClassName"], volume["metadata"].get("labels"))
        ]
    managed = {
        claim["metadata"]["name"]
        for _, claim in _claims("examples")
        if claim["metadata"]["labels"][TIERING_LABEL] == "managed"
    }
    assert managed == {"ai-checkpoints", "ai-dataset-storage", "shared-data-pvc"}
    for name, selecting in tiered.items():
        assert len(selecting) == (1 if name in managed else 0), (name, selecting)
    # The shared claims' backing volumes in another namespace are not this platform's: left alone.
    elsewhere = _backing_claim(_claim("distributed-storage.yaml", "shared-data-pvc"), "other-team")
    assert not any(
        rule.scope.selects(elsewhere["spec"]["storageClassName"], elsewhere["metadata"]["labels"])
        for rule in rules
    )


def test_shipped_thresholds_file_is_the_default():
    text = (ROOT / "thresholds.yaml").read_text()
    assert parse_thresholds(text, source="thresholds.yaml") == default_thresholds()


def test_shipped_suite_is_the_rendered_suite():
    shipped = _documents(ROOT / "tests" / "automated-test-suite.yaml")
    rendered = suite.suite_documents(suite.DEFAULT_STORAGE_CLASSES, suite.SuiteOptions())
    assert shipped == rendered, (
        "regenerate with: couchestor volumes render-suite > manifests/volumes/tests/..."
    )


def test_shipped_attachment_tests_are_the_rendered_ones():
    shipped = _documents(ROOT / "tests" / "volume-attachment-tests.yaml")
    assert shipped == attachment.attachment_documents(
        suite.DEFAULT_STORAGE_CLASSES, attachment.DEFAULT_SHARED_CLASS, suite.SuiteOptions()
    ), "regenerate with: couchestor volumes render-attachment > manifests/volumes/tests/..."


# Variables a script may leave unset: it has a default for them.
_OPTIONAL = {"SUITE_DIR", "DATA_DIR", "MOUNTS_FILE", "EXPECT_FSTYPE", "RUN_FIO", "SHARED_WAIT"}


def _script_variables(data: dict[str, str], script: str, env: dict[str, str]) -> set[str]:
    """The variables a script reads, with those of the fio script and job file it runs (unless RUN_FIO=0)."""
    text = data[script]
    if script == "run-fio.sh" or ("run-fio.sh" in text and env.get("RUN_FIO") != "0"):
        text += data["run-fio.sh"] + data["suite.fio"]
    return set(re.findall(r"\$\{?([A-Z_]+)", text)) - _OPTIONAL


def _shipped_jobs() -> list[dict[str, Any]]:
    return [doc for _, doc in _all("Job", "tests")]


def test_every_test_job_runs_a_script_of_the_config_map_with_the_variables_it_uses():
    (config,) = [doc for _, doc in _all("ConfigMap", "tests")][:1]
    data = config["data"]
    jobs = _shipped_jobs()
    assert len(jobs) == 3 * 3 + 3 + 2 + 1, "suite: 3 per class; attachment: 1 per class, 2 shared, 1 memory"
    for job in jobs:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        script = container["command"][-1].removeprefix(suite.SUITE_DIR + "/")
        env = {item["name"]: item["value"] for item in container["env"]}
        missing = _script_variables(data, script, env) - set(env)
        assert not missing, (job["metadata"]["name"], script, missing)
        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_every_attachment_check_of_a_class_runs_fio_and_the_others_do_not():
    runs_fio = {}
    for job in _shipped_jobs():
        labels = job["metadata"]["labels"]
        if labels[suite.TEST_LABEL] != attachment.ATTACHMENT_TEST:
            continue
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item["value"] for item in container["env"]}
        script = container["command"][-1].rsplit("/", 1)[-1]
        runs_fio[job["metadata"]["name"]] = script == "attach-check.sh" and env.get("RUN_FIO", "1") == "1"
    assert runs_fio == {
        "attach-fast-ssd": True,
        "attach-standard-storage": True,
        "attach-backup-storage": True,
        "attach-standard-storage-shared-a": False,
        "attach-standard-storage-shared-b": False,
        "attach-memory": False,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [("fast-ssd", "vt-fast-ssd"), ("a.b", "vt-a-b"), ("x" * 60, None), ("a" * 253, None)],
)
def test_suite_object_names_stay_valid_for_long_class_names(name, expected):
    base = suite.object_base_name(name)
    if expected is not None:
        assert base == expected
    assert len(f"{base}-integrity-verify") <= 63
    assert DNS_LABEL.match(base)
    assert suite.object_base_name(name) == base


@pytest.mark.parametrize("name", ["Fast", "under_score", "-x", ""])
def test_invalid_class_names_are_refused(name):
    with pytest.raises(UserError, match="not a valid StorageClass name"):
        suite.object_base_name(name)
