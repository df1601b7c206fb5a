# CoucheStor task runner. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the test suite but its long tests (installs the real Prometheus first when it is missing and we are root).
# Tests run in 6 worker processes (pytest-xdist): most of the suite waits on real processes and sampling
# windows, not on the CPU. A worker that runs out of tests takes some of another's (`worksteal`), so a few long
# tests left at the end do not hold the run up. COUCHESTOR_TEST_WORKERS=0 runs them in this process. The long
# tests (marker `slow`: the short soaks, the demo runs, the guides played as written, ...) are `just
# test-slow`; CI runs both.
test *ARGS: ensure-tools
    python3 -m pytest -n "${COUCHESTOR_TEST_WORKERS:-6}" --dist worksteal -m "not slow" {{ARGS}}

# Run the long tests (marker `slow`) in 3 workers: the two short soaks (a control plane, a Prometheus and two
# operators each, about 5 minutes) start first, side by side; the third worker runs the others meanwhile.
test-slow *ARGS: ensure-tools
    python3 -m pytest -n "${COUCHESTOR_TEST_WORKERS:-3}" --dist loadgroup -m slow {{ARGS}}

# ruff (lint + format check) and mypy --strict.
lint:
    python3 -m ruff check couchestor k8s_schemas tests
    python3 -m ruff format --check couchestor k8s_schemas tests
    python3 -m mypy

# Rewrite sources with ruff's formatter and safe fixes.
fmt:
    python3 -m ruff format couchestor k8s_schemas tests
    python3 -m ruff check --fix couchestor k8s_schemas tests

# Benchmarks against the alternatives; prints one table and writes bench/results.json.
bench *ARGS:
    python3 -m tests.bench {{ARGS}}

# The operator's main job on the embedded emulated cluster.
demo *ARGS:
    couchestor demo {{ARGS}}

# The alert rules' unit tests with promtool (also run by the suite, tests/monitoring/test_alerts.py).
alerts: ensure-tools
    promtool check rules manifests/prometheus/couchestor.rules.yaml
    promtool test rules tests/monitoring/alerts_test.yaml

# Regenerate manifests/ from k8s_schemas/.
manifests:
    python3 -m k8s_schemas.generate manifests

# Make sure the external programs the tests run are present.
ensure-tools:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v fio >/dev/null || missing+=(fio)
    if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages the tests need: $pkgs"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
    else
        echo "error: the tests need these programs: $pkgs" >&2
        echo "install them with: sudo apt-get install -y $pkgs" >&2
        exit 1
    fi
