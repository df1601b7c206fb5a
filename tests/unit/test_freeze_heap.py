"""``couchestor run`` freezes what survives a collection, again and again as caches are replaced."""

import gc

from couchestor.operator import freeze_heap


def test_freeze_heap_freezes_survivors_and_a_later_call_freezes_newer_ones():
    try:
        freeze_heap()
        first = gc.get_freeze_count()
        assert first > 0
        survivors = [[i] for i in range(1000)]  # tracked objects created after the first freeze
        cycle = []
        cycle.append(cycle)
        del cycle  # garbage: collected before the next freeze, never frozen
        freeze_heap()
        assert gc.get_freeze_count() >= first + len(survivors)
        gc.unfreeze()  # get_objects() does not list frozen objects
        assert not any(type(o) is list and len(o) == 1 and o[0] is o for o in gc.get_objects())
    finally:
        gc.unfreeze()
