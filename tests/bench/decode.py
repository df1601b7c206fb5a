"""Decode a realistic PersistentVolume LIST: typed msgspec Structs against the alternatives.

Compared: ``msgspec.json.decode(type=ObjectList[PersistentVolume])`` (what the operator does),
``json.loads`` (the standard library, untyped), and, when the ``bench`` extra is installed, the official
``kubernetes`` client's deserializer. Time is the best of several runs, interleaved between the contenders,
each after a full collection; peak memory is tracemalloc's peak while decoding, measured in a separate run so
tracing does not distort the times.
"""

from __future__ import annotations

import gc
import inspect
import json
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from k8s_schemas import ObjectList, PersistentVolume
from tests.bench.objects import pv_list
from tests.bench.timing import best_times


@dataclass(frozen=True)
class Figure:
    name: str
    seconds: float
    peak_bytes: int
    retained_bytes: int


def _memory(fn: Callable[[], Any]) -> tuple[int, int]:
    """(peak, retained) bytes traced while ``fn`` runs, in a run of its own so tracing distorts no time."""
    gc.collect()
    tracemalloc.start()
    result = fn()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak, current


def _kubernetes_decoder() -> Callable[[bytes], Any] | None:
    try:
        from kubernetes.client import ApiClient  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    api = ApiClient()

    class _Response:
        def __init__(self, data: bytes) -> None:
            self.data = data

    def decode(body: bytes) -> Any:
        # Recent clients take the text and content type (and the client decodes the bytes
        # to text first, so that is counted here too); older ones took the urllib3 response.
        if "response_text" in inspect.signature(api.deserialize).parameters:
            return api.deserialize(body.decode("utf-8"), "V1PersistentVolumeList", "application/json")
        return api.deserialize(_Response(body), "V1PersistentVolumeList")

    return decode


def run(n: int = 10_000, repeat: int = 5) -> dict[str, Any]:
    body = json.dumps(pv_list(n)).encode()
    decoder = msgspec.json.Decoder(ObjectList[PersistentVolume])
    contenders: dict[str, tuple[Callable[[], Any], int]] = {
        "msgspec typed Structs": (lambda: decoder.decode(body), repeat),
        "json.loads": (lambda: json.loads(body), repeat),
    }
    k8s = _kubernetes_decoder()
    if k8s is not None:
        contenders["kubernetes client deserializer"] = (lambda: k8s(body), max(1, repeat // 2))
    times = best_times(contenders)
    figures = [Figure(name, times[name], *_memory(fn)) for name, (fn, _) in contenders.items()]
    typed = figures[0]
    return {
        "objects": n,
        "bytes": len(body),
        "bytes_per_object": len(body) // n,
        "figures": [
            {
                "name": f.name,
                "seconds": round(f.seconds, 4),
                "peak_mib": round(f.peak_bytes / 2**20, 1),
                "retained_mib": round(f.retained_bytes / 2**20, 1),
                "time_ratio_vs_typed": round(f.seconds / typed.seconds, 1),
                "peak_ratio_vs_typed": round(f.peak_bytes / typed.peak_bytes, 1),
            }
            for f in figures
        ],
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Decode a {result['objects']:,}-PV list ({result['bytes'] / 2**20:.1f} MiB, "
        f"{result['bytes_per_object']:,} B/object)",
        f"  {'decoder':34} {'time':>9} {'peak':>10} {'retained':>10} {'x time':>8} {'x peak':>8}",
    ]
    for f in result["figures"]:
        lines.append(
            f"  {f['name']:34} {f['seconds'] * 1000:7.1f}ms {f['peak_mib']:8.1f}Mi {f['retained_mib']:8.1f}Mi"
            f" {f['time_ratio_vs_typed']:7.1f}x {f['peak_ratio_vs_typed']:7.1f}x"
        )
    lines.append("  (x = how many times the typed msgspec decode's time / peak memory)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
