"""Store: relist swap, secondary indexes, coalescing subscriptions (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import example, given, settings, strategies as st

from couchestor.kube.objects import ObjectKey
from couchestor.kube.store import Change, Store
from couchestor.kube.watcher import Apply, ApplyAll, Delete, Init, InitApply, InitDone
from tests.kube.mock import obj


def pv(name: str, rv: int, sc: str | None = None, ns: str | None = None) -> dict[str, Any]:
    return obj(name, rv, ns, spec={} if sc is None else {"storageClassName": sc})


def by_class(o: dict[str, Any]) -> list[str]:
    sc = o["spec"].get("storageClassName")
    return [sc] if sc else []


def by_name_and_class(o: dict[str, Any]) -> list[str]:
    """Two values per object, one of them its own (as the PVs' index by volume id and name)."""
    return [o["metadata"]["name"], *by_class(o)]


def listed(store: Store[Any], *objs: dict[str, Any], rv: str = "1") -> None:
    store.apply(Init())
    for o in objs:
        store.apply(InitApply(o))
    store.apply(InitDone(rv))


def drain(sub: Any) -> list[tuple[str, str]]:
    out = []
    while len(sub):
        key, kind = sub._pending.popitem(last=False)
        out.append((str(key), kind))
    return out


def test_indexes_follow_modifications_and_deletions() -> None:
    store: Store[dict[str, Any]] = Store({"class": by_class})
    listed(store, pv("a", 1, "hot"), pv("b", 2, "hot"), pv("c", 3))
    assert sorted(o["metadata"]["name"] for o in store.by_index("class", "hot")) == ["a", "b"]
    store.apply(Apply(pv("a", 4, "cold")))
    assert [o["metadata"]["name"] for o in store.by_index("class", "hot")] == ["b"]
    assert [o["metadata"]["name"] for o in store.by_index("class", "cold")] == ["a"]
    store.apply(Delete(pv("b", 5, "hot")))
    assert store.by_index("class", "hot") == []
    assert sorted(store.index_values("class")) == ["cold"]
    assert store.resource_version == "5"
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_not_synced_until_first_init_done_and_relist_is_atomic() -> None:
    store: Store[dict[str, Any]] = Store()
    store.apply(Init())
    store.apply(InitApply(pv("a", 1)))
    assert not store.synced
    assert len(store) == 0
    store.apply(InitDone("1"))
    assert store.synced
    sub = store.subscribe(initial=False)
    store.apply(Init())
    store.apply(InitApply(pv("b", 2)))
    assert store.keys() == [ObjectKey("", "a")]  # old contents until InitDone
    store.apply(InitDone("2"))
    assert store.keys() == [ObjectKey("", "b")]
    assert sorted(drain(sub)) == [("a", "deleted"), ("b", "added")]


def test_namespaced_keys() -> None:
    store: Store[dict[str, Any]] = Store()
    listed(store, pv("x", 1, ns="n1"), pv("x", 2, ns="n2"))
    assert store.get("x", "n1") is not None
    assert store.get("x") is None
    assert str(ObjectKey("n2", "x")) == "n2/x"


def test_subscription_coalesces_per_key() -> None:
    store: Store[dict[str, Any]] = Store()
    listed(store, pv("a", 1))
    sub = store.subscribe()
    assert drain(sub) == [("a", "added")]
    store.apply(Apply(pv("a", 2)))
    store.apply(Apply(pv("b", 3)))
    for rv in range(4, 100):
        store.apply(Apply(pv("a", rv)))
    store.apply(Apply(pv("c", 100)))
    store.apply(Delete(pv("c", 101)))  # added then deleted before delivery: nothing to report
    assert len(sub) == 2
    assert drain(sub) == [("a", "modified"), ("b", "added")]


async def test_subscription_receive_waits_and_ends_on_close() -> None:
    store: Store[dict[str, Any]] = Store()
    sub = store.subscribe()
    got: list[Change] = []

    async def consume() -> None:
        async for change in sub:
            got.append(change)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.sleep(0.01)
        listed(store, pv("a", 1))
        store.apply(Apply(pv("a", 2)))
        await trio.sleep(0.01)
        store.apply(Delete(pv("a", 3)))
        store.close()
    assert got == [Change(ObjectKey("", "a"), "added"), Change(ObjectKey("", "a"), "deleted")]


async def test_receive_batch_takes_every_pending_change_at_once() -> None:
    store: Store[dict[str, Any]] = Store()
    listed(store, pv("a", 1), pv("b", 2))
    sub = store.subscribe()
    store.apply(Apply(pv("a", 3)))  # coalesced with the initial "added"
    store.apply(Apply(pv("c", 4)))
    batch = await sub.receive_batch()
    assert [(c.key.name, c.kind) for c in batch] == [("a", "added"), ("b", "added"), ("c", "added")]
    assert len(sub) == 0
    got: list[list[tuple[str, str]]] = []

    async def consume() -> None:
        async for changes in sub.batches():
            got.append([(c.key.name, c.kind) for c in changes])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.sleep(0.01)
        store.apply(Delete(pv("b", 5)))
        store.apply(Apply(pv("a", 6)))
        await trio.sleep(0.01)
        store.apply(Apply(pv("c", 7)))
        store.close()  # the last batch is still delivered, then the iteration ends
    assert got == [[("b", "deleted"), ("a", "modified")], [("c", "modified")]]


async def test_wait_synced() -> None:
    store: Store[dict[str, Any]] = Store()
    with trio.move_on_after(0.01) as scope:
        await store.wait_synced()
    assert scope.cancelled_caught
    listed(store)
    with trio.fail_after(1):
        await store.wait_synced()


_NAMES = st.sampled_from(["a", "b", "c", "d"])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _NAMES, st.sampled_from(["hot", "cold", None])),
        st.tuples(st.just("del"), _NAMES, st.none()),
        st.tuples(st.just("relist"), st.none(), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_store_and_subscriber_view_match_a_model(ops: list[tuple[str, str | None, str | None]]) -> None:
    """Any sequence of watch events and relists: store == model, index == model, and a subscriber that
    replays its coalesced changes against the store ends with the same set of keys."""
    store: Store[dict[str, Any]] = Store({"class": by_class, "both": by_name_and_class})
    listed(store)
    sub = store.subscribe()
    model: dict[str, str | None] = {}
    known: set[str] = set()  # what the subscriber believes exists
    rv = 1
    for op, name, sc in ops:
        rv += 1
        if op == "put":
            assert name is not None
            model[name] = sc
            store.apply(Apply(pv(name, rv, sc)))
        elif op == "del":
            assert name is not None
            if name in model:
                store.apply(Delete(pv(name, rv, model.pop(name))))
        else:
            listed(store, *(pv(n, rv, c) for n, c in model.items()), rv=str(rv))
        if rv % 3 == 0:
            for key, kind in drain(sub):
                (known.discard if kind == "deleted" else known.add)(key)
    for key, kind in drain(sub):
        (known.discard if kind == "deleted" else known.add)(key)
    assert {
        k.name: o["spec"].get("storageClassName") for k, o in zip(store.keys(), store.list(), strict=True)
    } == model
    assert known == set(model)
    for cls in ("hot", "cold"):
        assert sorted(o["metadata"]["name"] for o in store.by_index("class", cls)) == sorted(
            n for n, c in model.items() if c == cls
        )
        assert sorted(o["metadata"]["name"] for o in store.by_index("both", cls)) == sorted(
            n for n, c in model.items() if c == cls
        )
    for name in ("a", "b", "c", "d"):
        assert [o["metadata"]["name"] for o in store.by_index("both", name)] == (
            [name] if name in model else []
        )
    assert sorted(store.index_values("both")) == sorted({*model, *(c for c in model.values() if c)})


def snapshot(store: Store[dict[str, Any]], sub: Any) -> tuple[Any, ...]:
    classes = {c: sorted(o["metadata"]["name"] for o in store.by_index("class", c)) for c in ("hot", "cold")}
    return (
        [(str(k), o) for k, o in zip(store.keys(), store.list(), strict=True)],
        classes,
        sorted(store.index_values("class")),
        store.resource_version,
        list(sub._pending.items()),
    )


@settings(max_examples=200, deadline=None)
@given(_OPS, st.lists(st.integers(1, 5), min_size=1, max_size=10))
# Seen deleted, then put back twice in one run: only the first put is its addition.
@example(
    ops=[("relist", None, None)] * 3 + [("del", "a", None), ("put", "a", "hot"), ("put", "a", "hot")],
    runs=[2],
)
def test_apply_all_is_one_apply_per_object(
    ops: list[tuple[str, str | None, str | None]], runs: list[int]
) -> None:
    """A watcher with ``batch`` set passes a chunk's run of objects as one ApplyAll: the store, its index,
    its resourceVersion and every subscriber's pending changes end as with one Apply per object."""
    one_by_one: Store[dict[str, Any]] = Store({"class": by_class})
    batched: Store[dict[str, Any]] = Store({"class": by_class})
    subs = []
    for store in (one_by_one, batched):
        listed(store, pv("a", 1, "hot"))
        subs.append(store.subscribe())
    model: dict[str, str | None] = {"a": "hot"}
    run: list[dict[str, Any]] = []
    sizes = iter(runs * len(ops))

    def flush() -> None:
        if run:
            batched.apply(ApplyAll(list(run)))
            run.clear()

    for rv, (op, name, sc) in enumerate(ops, start=2):
        if op == "put":
            assert name is not None
            model[name] = sc
            one_by_one.apply(Apply(pv(name, rv, sc)))
            run.append(pv(name, rv, sc))
            if len(run) >= next(sizes):
                flush()
        elif op == "del" and name in model:
            flush()
            for store in (one_by_one, batched):
                store.apply(Delete(pv(name, rv, model[name])))
            del model[name]
        elif op == "relist":
            flush()
            for store in (one_by_one, batched):
                listed(store, *(pv(n, rv, c) for n, c in model.items()), rv=str(rv))
        if rv % 4 == 0:
            flush()
            assert snapshot(one_by_one, subs[0]) == snapshot(batched, subs[1])
            for sub in subs:
                drain(sub)
    flush()
    assert snapshot(one_by_one, subs[0]) == snapshot(batched, subs[1])


async def test_forward_into_memory_channel_never_blocks_the_store() -> None:
    store: Store[dict[str, Any]] = Store()
    listed(store, pv("a", 1))
    sub = store.subscribe()
    send, receive = trio.open_memory_channel[Change](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sub.forward, send)
        # Nobody reads yet: a thousand updates still apply at once, and coalesce.
        for rv in range(2, 1002):
            store.apply(Apply(pv("a", rv)))
            store.apply(Apply(pv(f"n{rv % 3}", rv)))
        async with receive:
            first = await receive.receive()
            store.close()
            rest = [change async for change in receive]
    assert first == Change(ObjectKey("", "a"), "added")
    assert sorted((str(c.key), c.kind) for c in rest) == [("n0", "added"), ("n1", "added"), ("n2", "added")]
