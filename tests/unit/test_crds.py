"""The CRDs in manifests/ are generated from k8s_schemas and are structural, as Kubernetes requires."""

from pathlib import Path

import pytest
import yaml

from k8s_schemas.crds import all_crds
from k8s_schemas.generate import main as generate

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def test_generated_manifests_are_up_to_date(capsys):
    assert generate(["--check", str(MANIFESTS)]) == 0, capsys.readouterr().err


def test_check_mode_reports_stale_files(tmp_path, capsys):
    assert generate(["--check", str(tmp_path)]) == 1
    assert "run `just manifests`" in capsys.readouterr().err
    assert generate([str(tmp_path)]) == 0
    assert generate(["--check", str(tmp_path)]) == 0


def _walk(node, path):
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_schemas_are_structural(name):
    crd = yaml.safe_load((MANIFESTS / "crds" / name).read_text().split("\n", 1)[1])
    for version in crd["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        for path, node in _walk(root, ""):
            assert "$ref" not in node, path
            assert "anyOf" not in node, path
            assert (
                "type" in node
                or node.get("x-kubernetes-int-or-string")
                or node.get("x-kubernetes-preserve-unknown-fields")
            ), f"{name}: {path or '<root>'} has no type"


def test_storage_policy_crd_contract():
    crd = all_crds()["storagepolicies.yaml"]
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "storagepolicies.storage.billyronks.io"
    assert (spec["scope"], spec["names"]["shortNames"]) == ("Cluster", ["sp", "spolicy"])
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Watched",
        "Hot",
        "Cold",
        "Migrating",
        "Dry-Run",
        "Age",
    ]
    props = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert props["highWatermarkIOPS"]["default"] == 5000
    assert "default" not in props["warmWatermarkIOPS"]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert any(r["rule"] == "self.lowWatermarkIOPS < self.highWatermarkIOPS" for r in rules)


def test_simulation_crds_are_marked():
    for name in ("sim-mayastorvolumes.yaml", "sim-diskpools.yaml"):
        crd = all_crds()[name]
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "couchestor-sim"
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert "SIMULATION RESOURCE" in root["properties"]["spec"]["description"]
