"""``python -m tests.bench [--smoke]``: run every benchmark, print one table, write bench/results.json."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from tests.bench import decode


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("msgspec", "trio", "httpx", "kubernetes", "kopf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="just bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmarks still run")
    parser.add_argument("--out", default="bench/results.json", help="where to write the figures")
    args = parser.parse_args(argv)
    n, repeat = (200, 1) if args.smoke else (10_000, 5)
    results = {"decode": decode.run(n, repeat)}
    print(decode.report(results["decode"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "machine": platform.machine(), "cpus": _cpu_count()}
    out.write_text(json.dumps({"machine": machine, "versions": _versions(), "results": results}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
