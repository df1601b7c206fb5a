import pytest

from couchestor.sim.apiserver.continuation import decode_continue, encode_continue
from couchestor.sim.apiserver.errors import ApiError
from couchestor.sim.apiserver.store import Store


def _obj(name, **labels):
    return {"metadata": {"name": name, "uid": name, "labels": labels}}


def test_commits_bump_one_global_resource_version():
    s = Store(history_limit=100)
    r1 = s.commit("a", "ADDED", ("", "x"), _obj("x"))
    r2 = s.commit("b", "ADDED", ("ns", "y"), _obj("y"))
    assert r2.rv == r1.rv + 1 == s.rv
    assert b'"resourceVersion":"%d"' % r2.rv in r2.raw


def test_snapshot_shows_the_past_in_key_order():
    s = Store(history_limit=100)
    for name in ("b", "a", "c"):
        s.commit("pv", "ADDED", ("", name), _obj(name))
    at = s.rv
    s.commit("pv", "DELETED", ("", "a"), _obj("a"))
    s.commit("pv", "ADDED", ("", "aa"), _obj("aa"))
    s.commit("pv", "MODIFIED", ("", "c"), _obj("c", changed="yes"))
    past = list(s.snapshot("pv", at, None, None))
    assert [k[1] for k, _ in past] == ["a", "b", "c"]
    assert past[2][1].labels is None
    now = list(s.snapshot("pv", s.rv, ("", "aa"), None))
    assert [k[1] for k, _ in now] == ["aa", "b", "c"]
    assert now[2][1].labels == {"changed": "yes"}


def test_history_is_bounded_and_compaction_moves_forward():
    s = Store(history_limit=3)
    for i in range(5):
        s.commit("pv", "ADDED", ("", f"o{i}"), _obj(f"o{i}"))
    assert len(s.history) == 3
    assert s.compacted_rv == s.history[0].rv - 1
    assert [c.key[1] for c in s.changes_since(s.compacted_rv, "pv")] == ["o2", "o3", "o4"]
    s.compact()
    assert s.compacted_rv == s.rv
    assert not list(s.changes_since(0, "pv"))


def test_a_resource_not_changed_since_a_version_is_still_served_from_it():
    # Like the real API server's per-resource watch cache: many writes of PVs leave the policies' watch and
    # list versions valid while none of their changes was dropped.
    s = Store(history_limit=3)
    s.commit("policy", "ADDED", ("", "p"), _obj("p"))
    quiet = s.rv
    for i in range(5):
        s.commit("pv", "ADDED", ("", f"o{i}"), _obj(f"o{i}"))
    assert s.compacted_rv_of("policy") <= quiet < s.compacted_rv
    assert s.compacted_rv_of("pv") == s.compacted_rv
    assert [c.key[1] for c in s.changes_since(s.compacted_rv_of("pv"), "pv")] == ["o2", "o3", "o4"]
    # Once one of its changes is dropped, an older version of that resource is gone too.
    s.commit("policy", "MODIFIED", ("", "p"), _obj("p", changed="yes"))
    for i in range(4, 7):
        s.commit("pv", "ADDED", ("", f"o{i}"), _obj(f"o{i}"))
    assert s.compacted_rv_of("policy") > quiet
    s.compact()
    assert s.compacted_rv_of("policy") == s.compacted_rv_of("pv") == s.rv


def test_namespace_scoped_key_iteration():
    s = Store(history_limit=10)
    for key in (("b", "1"), ("a", "2"), ("a", "1"), ("c", "0")):
        s.commit("cm", "ADDED", key, _obj(key[1]))
    b = s.bucket("cm")
    assert list(b.keys_from(None, "a")) == [("a", "1"), ("a", "2")]
    assert b.count_from(("a", "2"), "a") == 1
    assert b.count_from(("b", "1"), None) == 2


def test_slow_watcher_is_closed_instead_of_blocking():
    s = Store(history_limit=10)
    s.watch_buffer = 2
    w = s.add_watcher("pv")
    for i in range(3):
        s.commit("pv", "ADDED", ("", f"o{i}"), _obj(f"o{i}"))
    assert w.closed
    assert w not in s.watchers()


def test_continue_tokens_round_trip_and_reject_garbage():
    token = encode_continue(42, ("ns", "name"))
    assert decode_continue(token, namespaced=True) == (42, ("ns", "name"))
    assert decode_continue(encode_continue(7, ("", "pv-1")), namespaced=False) == (7, ("", "pv-1"))
    for bad in ("!!!", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJ4In0="):
        with pytest.raises(ApiError) as info:
            decode_continue(bad, namespaced=False)
        assert info.value.code == 400
