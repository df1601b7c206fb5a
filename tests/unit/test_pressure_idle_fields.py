"""``maxTierFillPercent`` and ``coldAfterIdle`` held alike by the CRD (schema + CEL, as the emulated API server
evaluates it) and the policy compiler; tests/envtest/test_manifests.py holds the real API server to the same
table."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from couchestor.sim.apiserver.schema import apply_defaults, validate
from couchestor.tiering.policy import PolicyProblem, PolicyRules, compile_policy
from k8s_schemas.crds import storage_policy_crd
from k8s_schemas.storage_policy import StoragePolicy

#: (spec, None when valid else the refused field)
CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"maxTierFillPercent": 85}, None),
    ({"maxTierFillPercent": 1}, None),
    ({"maxTierFillPercent": 100}, None),
    ({"maxTierFillPercent": 0}, "spec.maxTierFillPercent"),
    ({"maxTierFillPercent": 101}, "spec.maxTierFillPercent"),
    ({"coldAfterIdle": {"period": "7d", "belowIOPS": 10}}, None),
    ({"coldAfterIdle": {"period": "1d12h", "belowIOPS": 0}}, None),
    ({"coldAfterIdle": {"period": "7 days", "belowIOPS": 10}}, "spec.coldAfterIdle.period"),
    ({"coldAfterIdle": {"period": "7d", "belowIOPS": -1}}, "spec.coldAfterIdle.belowIOPS"),
    ({"coldAfterIdle": {"period": "7d"}}, "spec.coldAfterIdle.belowIOPS"),
]


def body(spec: dict[str, Any], name: str = "limits") -> dict[str, Any]:
    return {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "metadata": {"name": name},
        "spec": copy.deepcopy(spec),
    }


@pytest.mark.parametrize(("spec", "refused"), CASES)
def test_the_crd_as_the_emulator_evaluates_it(spec, refused):
    schema = storage_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = body(spec)
    apply_defaults(obj, schema)
    # ("<nil>": the API server's note that the CEL rules were skipped for an object failing its schema.)
    fields = {e.field for e in validate(obj, schema)} - {"<nil>"}
    assert fields == (set() if refused is None else {refused})


@pytest.mark.parametrize(("spec", "refused"), CASES)
def test_the_compiler(spec, refused):
    compiled = compile_policy(msgspec.convert(body(spec), StoragePolicy))
    if refused is None:
        assert isinstance(compiled, PolicyRules), compiled
        return
    assert isinstance(compiled, PolicyProblem)
    # A missing field is reported on the object that misses it.
    assert [p.field for p in compiled.problems] in ([refused], [refused.rsplit(".", 1)[0]])
