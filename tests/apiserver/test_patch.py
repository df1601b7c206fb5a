import pytest
from hypothesis import given, strategies as st

from couchestor.sim.apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


def test_merge_patch_rfc7386_examples():
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": "b", "b": "c"}, {"a": None}) == {"b": "c"}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent(target, patch):
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@given(json_objects, json_objects)
def test_merge_patch_never_mutates_its_inputs(target, patch):
    import copy

    t, p = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert (target, patch) == (t, p)


def test_json_patch_operations():
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "move", "from": "/c", "path": "/d"},
            {"op": "copy", "from": "/d", "path": "/e~1f"},
            {"op": "test", "path": "/a/b", "value": [0, 1, 2, 3]},
            {"op": "remove", "path": "/a/b/1"},
        ],
    )
    assert out == {"a": {"b": [0, 2, 3]}, "d": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "add", "path": "/x/y", "value": 1}],
        [{"op": "add", "path": "/l/5", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "/a"}],
        {"op": "add"},
    ],
)
def test_json_patch_errors(ops):
    with pytest.raises(PatchError):
        json_patch({"a": 1, "l": [1]}, ops)


def test_strategic_merge_patch_directives_and_merge_keys():
    live = {
        "metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}, {"uid": "2"}]},
        "spec": {"list": [1, 2], "keep": {"a": 1, "b": 2}, "gone": {"x": 1}},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    patch = {
        "metadata": {
            "finalizers": ["b"],
            "ownerReferences": [{"uid": "1", "name": "y"}, {"uid": "2", "$patch": "delete"}],
        },
        "spec": {
            "list": [3],
            "keep": {"$retainKeys": ["a", "c"], "c": 3},
            "gone": {"$patch": "delete"},
            "$setElementOrder/list": [3],
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]},
    }
    out = strategic_merge_patch(live, patch)
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert out["metadata"]["ownerReferences"] == [{"uid": "1", "name": "y"}]
    assert out["spec"] == {"list": [3], "keep": {"a": 1, "c": 3}}
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "Synced", "status": "True"},
    ]


def test_strategic_merge_patch_replace_and_primitive_delete():
    live = {"data": {"a": "1", "b": "2"}, "metadata": {"finalizers": ["x", "y"]}}
    patch = {
        "data": {"$patch": "replace", "c": "3"},
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]},
    }
    assert strategic_merge_patch(live, patch) == {"data": {"c": "3"}, "metadata": {"finalizers": ["y"]}}
