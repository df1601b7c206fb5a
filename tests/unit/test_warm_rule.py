"""One rule for the warm tier, held alike by the CRD (schema + CEL, as the emulated API server evaluates it, and
through its HTTP API) and the policy compiler; tests/envtest/test_manifests.py holds the real API server to the
same table.

The rule: ``warmWatermarkIOPS`` unset or ``0`` means no warm tier; otherwise it lies strictly between the low
and high watermarks. ``warmPoolSelector`` needs a warm tier (a non-zero ``warmWatermarkIOPS``); a warm tier
without it selects the pools labelled ``tier: warm``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given, strategies as st

from couchestor.sim.apiserver.schema import apply_defaults, validate
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from k8s_schemas.crds import storage_policy_crd
from k8s_schemas.storage_policy import WARM_WATERMARK_DESCRIPTION, StoragePolicy

SSD = {"matchLabels": {"media": "ssd"}}

#: (spec, None when valid else the refused field, the warm tier's selector labels when valid with one)
CASES: list[tuple[dict[str, Any], str | None, dict[str, str] | None]] = [
    ({"warmWatermarkIOPS": 0}, None, None),
    ({}, None, None),
    ({"warmWatermarkIOPS": 2000}, None, {"tier": "warm"}),
    ({"warmWatermarkIOPS": 2000, "warmPoolSelector": SSD}, None, {"media": "ssd"}),
    ({"warmPoolSelector": SSD}, "spec.warmPoolSelector", None),
    ({"warmWatermarkIOPS": 0, "warmPoolSelector": SSD}, "spec.warmPoolSelector", None),
    ({"warmWatermarkIOPS": 5000}, "spec.warmWatermarkIOPS", None),
    ({"warmWatermarkIOPS": 100}, "spec.warmWatermarkIOPS", None),
]


def body(spec: dict[str, Any], name: str = "warm") -> dict[str, Any]:
    return {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "metadata": {"name": name},
        "spec": copy.deepcopy(spec),
    }


@pytest.mark.parametrize(("spec", "refused", "labels"), CASES)
def test_the_crd_as_the_emulator_evaluates_it(spec, refused, labels):
    schema = storage_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = body(spec)
    apply_defaults(obj, schema)
    fields = {e.field for e in validate(obj, schema)}
    assert fields == (set() if refused is None else {refused})


@pytest.mark.parametrize(("spec", "refused", "labels"), CASES)
def test_the_compiler(spec, refused, labels):
    compiled = compile_policy(_decode(spec))
    if refused is not None:
        assert isinstance(compiled, PolicyProblem)
        assert [p.field for p in compiled.problems] == [refused]
        return
    assert isinstance(compiled, PolicyRules)
    if labels is None:
        assert Tier.WARM not in compiled.tiers
    else:
        assert compiled.tiers_matching(labels) == {Tier.WARM}


def _decode(spec: dict[str, Any]) -> StoragePolicy:
    import msgspec

    return msgspec.convert(body(spec), StoragePolicy)


def _table() -> dict[tuple[Tier, str], Tier]:
    """The hysteresis table of the CRD's warmWatermarkIOPS description: (tier on, IOPS column) -> tier wanted."""
    lines = [line.split() for line in WARM_WATERMARK_DESCRIPTION.splitlines() if line.startswith("  ")]
    columns = ("below low", "low to warm", "warm to high", "above high")
    out = {}
    for words in lines[1:]:
        on, cells = Tier(words[0]), " ".join(words[1:]).replace("stays ", "stays_").split()
        assert len(cells) == len(columns), words
        for column, cell in zip(columns, cells, strict=True):
            out[(on, column)] = Tier(cell.removeprefix("stays_"))
            assert cell.startswith("stays_") == (out[(on, column)] is on), (on, column, cell)
    return out


@given(
    low=st.integers(0, 1000),
    gaps=st.tuples(st.integers(1, 1000), st.integers(1, 1000)),
    score=st.one_of(st.integers(0, 3000).map(float), st.floats(0, 3000, allow_nan=False)),
    on=st.sampled_from(list(Tier)),
)
def test_the_crd_description_table_is_the_engines_rule(low, gaps, score, on):
    warm, high = low + gaps[0], low + gaps[0] + gaps[1]
    rules = compile_policy(
        _decode({"lowWatermarkIOPS": low, "warmWatermarkIOPS": warm, "highWatermarkIOPS": high})
    )
    assert isinstance(rules, PolicyRules)
    # "A score exactly on a watermark does not cross it": on a boundary, the column on the volume's side.
    side = on.rank - 1  # -1 below the boundary (cold), 0 either (warm), +1 above (hot)
    if score < low or (score == low and side < 0):
        column = "below low"
    elif score < warm or (score == warm and side <= 0):
        column = "low to warm"
    elif score < high or (score == high and side <= 0):
        column = "warm to high"
    else:
        column = "above high"
    wanted = _table()[(on, column)]
    assert (rules.target_tier(score, on) or on) is wanted


async def test_the_emulated_api_server_admits_what_the_table_says(apiserver):
    """The same table through the emulator's HTTP API (admission as ``kubectl apply`` meets it)."""
    from couchestor.kube import KubeClient, load_kubeconfig, resources
    from couchestor.kube.errors import ApiError
    from couchestor.sim.populate import install_crds

    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        await install_crds(client)
        for i, (spec, refused, _) in enumerate(CASES):
            create = client.create(resources.STORAGE_POLICY, body(spec, f"warm-{i}"), type=dict)
            if refused is None:
                await create
                continue
            with pytest.raises(ApiError, match=re.escape(f"{refused}: Invalid value")):
                await create
