"""The volume test suite as Kubernetes objects: pure functions from options to manifests.

Per StorageClass the suite is one PVC and three Jobs that use it one after the other:

1. ``<base>-integrity-write``: writes files of random data and their SHA-256 list, then exits (unmount);
2. ``<base>-integrity-verify``: a new pod mounts the volume again and checks every file (the "remount");
3. ``<base>-fio``: runs the fio job file (sequential write/read, 4 KiB random read IOPS, latency, mixed).

Each Job prints its result between markers (:mod:`couchestor.volumes.markers`). The scripts and the fio job
file live in one ConfigMap; the shipped ``manifests/volumes/tests/automated-test-suite.yaml`` is
:func:`render_suite_yaml` of the default options (a test keeps the two equal).

The pods run as a non-root user with every capability dropped, so they are admitted in namespaces that
enforce the "restricted" Pod Security Standard; ``fsGroup`` makes the fresh volume writable for that user.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from couchestor.errors import UserError

DEFAULT_NAMESPACE = "storage-tests"
DEFAULT_STORAGE_CLASSES = ("fast-ssd", "standard-storage", "backup-storage")
# Built on demand by Nixery from nixpkgs: its "shell" set (bash, coreutils, moreutils, nano: no grep, sed or awk)
# and fio 3.x. The scripts need only a POSIX shell, coreutils and fio, so any image with those works (--image);
# mirror it or pin it by digest where clusters cannot pull from public registries.
DEFAULT_IMAGE = "nixery.dev/shell/fio"
CONFIG_MAP_NAME = "couchestor-volume-tests"
SUITE_DIR = "/etc/couchestor-volume-tests"
DATA_DIR = "/data"
PART_OF = "couchestor"
COMPONENT = "volume-tests"
STORAGE_CLASS_LABEL = "storage.billyronks.io/test-storage-class"
TEST_LABEL = "couchestor.billyronks.io/test"

FIO_JOBFILE = """\
; CoucheStor volume test suite: the fio jobs graded by `couchestor volumes test` and `volumes report`.
; The job names are the test names the grader looks for. Tunables come from the environment (FIO_DIR,
; FIO_SIZE, FIO_RUNTIME, FIO_RAMP, FIO_IOENGINE, FIO_DIRECT) so the same file runs in a pod and in a plain
; shell. Each job starts after the previous one has finished (stonewall).
[global]
directory=${FIO_DIR}
filename=couchestor-fio.dat
size=${FIO_SIZE}
ioengine=${FIO_IOENGINE}
direct=${FIO_DIRECT}
time_based=1
runtime=${FIO_RUNTIME}
ramp_time=${FIO_RAMP}
group_reporting=1
randrepeat=0

; Sequential throughput: 1 MiB blocks, 16 in flight.
[seq-write]
stonewall
rw=write
bs=1m
iodepth=16

[seq-read]
stonewall
rw=read
bs=1m
iodepth=16

; Random IOPS: 4 KiB reads, 32 in flight.
[rand-read-4k]
stonewall
rw=randread
bs=4k
iodepth=32

; Latency: 4 KiB reads, one at a time, so each I/O's time is the device's and not the queue's.
[latency-4k]
stonewall
rw=randread
bs=4k
iodepth=1

; Mixed workload: 70% reads, 30% writes, 4 KiB, 16 in flight (reported, not graded).
[mixed-4k]
stonewall
rw=randrw
rwmixread=70
bs=4k
iodepth=16
"""

RUN_FIO_SCRIPT = """\
# Run the suite's fio jobs on the volume and print fio's JSON document between result markers.
set -u
suite_dir="${SUITE_DIR:-/etc/couchestor-volume-tests}"
mkdir -p "$FIO_DIR"
fio --output-format=json --output="$FIO_DIR/fio-result.json" "$suite_dir/suite.fio"
status=$?
echo ">>> couchestor-result kind=fio storage-class=$STORAGE_CLASS exit=$status begin"
cat "$FIO_DIR/fio-result.json"
echo
echo "<<< couchestor-result end"
rm -f "$FIO_DIR/couchestor-fio.dat" "$FIO_DIR/fio-result.json"
exit $status
"""

INTEGRITY_WRITE_SCRIPT = """\
# Write INTEGRITY_FILES files of INTEGRITY_FILE_MIB MiB of random data and their SHA-256 list, then sync.
set -eu
dir="${DATA_DIR:-/data}/couchestor-integrity"
rm -rf "$dir"
mkdir -p "$dir"
i=1
while [ "$i" -le "$INTEGRITY_FILES" ]; do
  head -c "$((INTEGRITY_FILE_MIB * 1048576))" /dev/urandom > "$dir/file-$i"
  i=$((i + 1))
done
(cd "$dir" && sha256sum file-* > SHA256SUMS)
sync
echo ">>> couchestor-result kind=integrity-write storage-class=$STORAGE_CLASS begin"
echo "{\\"files\\": $INTEGRITY_FILES, \\"bytes\\": $((INTEGRITY_FILES * INTEGRITY_FILE_MIB * 1048576))}"
echo "<<< couchestor-result end"
"""

INTEGRITY_VERIFY_SCRIPT = """\
# Check the files the writer left against their SHA-256 list; print the verdict; fail unless all are intact.
set -u
dir="${DATA_DIR:-/data}/couchestor-integrity"
files=0
verified=0
if [ -f "$dir/SHA256SUMS" ]; then
  files=$(($(wc -l < "$dir/SHA256SUMS")))
  # Count the lines sha256sum reports as OK, in plain sh: the image need not have grep.
  verified=$(cd "$dir" && sha256sum -c SHA256SUMS 2>/dev/null | {
    n=0
    while IFS= read -r line; do
      case "$line" in *": OK") n=$((n + 1)) ;; esac
    done
    echo "$n"
  })
fi
failed=$((files - verified))
echo ">>> couchestor-result kind=integrity-verify storage-class=$STORAGE_CLASS begin"
echo "{\\"files\\": $files, \\"verified\\": $verified, \\"failed\\": $failed, \\"expected\\": $INTEGRITY_FILES}"
echo "<<< couchestor-result end"
rm -rf "$dir"
[ "$failed" -eq 0 ] && [ "$verified" -eq "$INTEGRITY_FILES" ]
"""

ATTACH_CHECK_SCRIPT = """\
# Attachment test: DATA_DIR is a mounted volume (of filesystem type EXPECT_FSTYPE, when set), writable, and
# reads back what was written; then, unless RUN_FIO=0, a short fio pass over it printed as a result block.
set -eu
dir="${DATA_DIR:-/data}"
echo "attachment test: $STORAGE_CLASS"
fstype=""
while read -r _device mountpoint type _rest; do
  if [ "$mountpoint" = "$dir" ]; then fstype="$type"; fi
done < "${MOUNTS_FILE:-/proc/mounts}"
if [ -z "$fstype" ]; then echo "FAIL: $dir is not a mounted volume"; exit 1; fi
if [ -n "${EXPECT_FSTYPE:-}" ] && [ "$fstype" != "$EXPECT_FSTYPE" ]; then
  echo "FAIL: $dir is $fstype, not $EXPECT_FSTYPE"; exit 1
fi
df -h "$dir"
probe="$dir/attachment-test-$$"
echo "written by $STORAGE_CLASS attachment test $$" > "$probe"
sync
if [ "$(cat "$probe")" != "written by $STORAGE_CLASS attachment test $$" ]; then
  echo "FAIL: $STORAGE_CLASS did not read back what was written"; exit 1
fi
rm -f "$probe"
echo "PASS: $STORAGE_CLASS mounted ($fstype), writable, read back"
if [ "${RUN_FIO:-1}" = 1 ]; then
  exec sh "${SUITE_DIR:-/etc/couchestor-volume-tests}/run-fio.sh"
fi
"""

SHARED_CHECK_SCRIPT = """\
# Shared attachment test: two pods (SHARED_SELF, SHARED_PEER) mount one ReadWriteMany claim; each writes its own
# file and waits up to SHARED_WAIT seconds for the other's to appear through the volume.
set -eu
dir="${DATA_DIR:-/data}"
echo "shared attachment test: $STORAGE_CLASS, $SHARED_SELF waits for $SHARED_PEER"
echo "$SHARED_SELF" > "$dir/shared-$SHARED_SELF"
sync
waited=0
while [ ! -f "$dir/shared-$SHARED_PEER" ]; do
  if [ "$waited" -ge "${SHARED_WAIT:-120}" ]; then
    echo "FAIL: $SHARED_PEER's file never appeared in $waited s"; exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
echo "PASS: $STORAGE_CLASS shared between $SHARED_SELF and $SHARED_PEER"
"""

SCRIPTS = {
    "suite.fio": FIO_JOBFILE,
    "run-fio.sh": RUN_FIO_SCRIPT,
    "integrity-write.sh": INTEGRITY_WRITE_SCRIPT,
    "integrity-verify.sh": INTEGRITY_VERIFY_SCRIPT,
    "attach-check.sh": ATTACH_CHECK_SCRIPT,
    "shared-check.sh": SHARED_CHECK_SCRIPT,
}


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    """What a run of the suite may change. Sizes use Kubernetes quantities (PVC) and fio sizes (fio)."""

    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    pvc_size: str = "10Gi"
    fio_size: str = "2g"  # larger than the node's page cache is not needed: the jobs use O_DIRECT
    fio_runtime_seconds: int = 30
    fio_ramp_seconds: int = 2
    fio_ioengine: str = "libaio"
    fio_direct: bool = True
    integrity_files: int = 8
    integrity_file_mib: int = 16
    job_deadline_seconds: int = 900


@dataclass(frozen=True, slots=True)
class ClassSuite:
    """The objects of one StorageClass, in the order they are used."""

    storage_class: str
    pvc: dict[str, Any]
    integrity_write: dict[str, Any]
    integrity_verify: dict[str, Any]
    fio: dict[str, Any]

    @property
    def jobs(self) -> tuple[dict[str, Any], ...]:
        return (self.integrity_write, self.integrity_verify, self.fio)


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def object_base_name(storage_class: str) -> str:
    """``vt-<class>``, shortened with a hash when needed so ``<base>-integrity-verify`` stays a valid name."""
    if len(storage_class) > 253 or not _DNS_SUBDOMAIN.match(storage_class):
        raise UserError(f"{storage_class!r} is not a valid StorageClass name (a lowercase DNS subdomain)")
    name = storage_class.replace(".", "-")
    if len(name) > 36:
        digest = hashlib.sha256(storage_class.encode()).hexdigest()[:8]
        name = f"{name[:27].rstrip('-')}-{digest}"
    return f"vt-{name}"


def labels_for(storage_class: str) -> dict[str, str]:
    """The labels of every object that tests ``storage_class``."""
    return {
        "app.kubernetes.io/name": "couchestor-volume-tests",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": COMPONENT,
        "purpose": "testing",
        STORAGE_CLASS_LABEL: object_base_name(storage_class).removeprefix("vt-"),
    }


def namespace_object(options: SuiteOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": options.namespace,
            "labels": {"app.kubernetes.io/part-of": PART_OF, "purpose": "testing"},
        },
    }


def config_map(options: SuiteOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIG_MAP_NAME,
            "namespace": options.namespace,
            "labels": {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": COMPONENT},
        },
        "data": dict(SCRIPTS),
    }


def suite_job(
    name: str,
    test: str,
    storage_class: str,
    script: str,
    env: dict[str, str],
    options: SuiteOptions,
    *,
    data_volume: dict[str, Any],
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Job that runs ``script`` from the suite's ConfigMap once (no retries), with ``data_volume`` (a volume
    source: a claim, an emptyDir) mounted at ``/data`` and ``STORAGE_CLASS`` plus ``env`` in its environment."""
    labels = {**labels_for(storage_class), TEST_LABEL: test}
    container = {
        "name": "test",
        "image": options.image,
        "command": ["sh", f"{SUITE_DIR}/{script}"],
        "env": [
            {"name": key, "value": value} for key, value in {"STORAGE_CLASS": storage_class, **env}.items()
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "suite", "mountPath": SUITE_DIR, "readOnly": True},
        ],
    }
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,  # a failed test is a result, not something to retry
            "activeDeadlineSeconds": options.job_deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "data", **data_volume},
                        {"name": "suite", "configMap": {"name": CONFIG_MAP_NAME}},
                    ],
                },
            },
        },
    }
    if affinity is not None:
        job["spec"]["template"]["spec"]["affinity"] = affinity
    return job


def fio_environment(options: SuiteOptions) -> dict[str, str]:
    """The variables ``run-fio.sh`` and the fio job file read."""
    return {
        "FIO_DIR": f"{DATA_DIR}/couchestor-fio",
        "FIO_SIZE": options.fio_size,
        "FIO_RUNTIME": str(options.fio_runtime_seconds),
        "FIO_RAMP": str(options.fio_ramp_seconds),
        "FIO_IOENGINE": options.fio_ioengine,
        "FIO_DIRECT": "1" if options.fio_direct else "0",
    }


def class_suite(storage_class: str, options: SuiteOptions) -> ClassSuite:
    """The PVC and Jobs that test ``storage_class``."""
    base = object_base_name(storage_class)
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": base, "namespace": options.namespace, "labels": labels_for(storage_class)},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": options.pvc_size}},
        },
    }
    claim = {"persistentVolumeClaim": {"claimName": base}}
    integrity_env = {
        "DATA_DIR": DATA_DIR,
        "INTEGRITY_FILES": str(options.integrity_files),
        "INTEGRITY_FILE_MIB": str(options.integrity_file_mib),
    }
    fio_env = fio_environment(options)
    return ClassSuite(
        storage_class=storage_class,
        pvc=pvc,
        integrity_write=suite_job(
            f"{base}-integrity-write",
            "integrity-write",
            storage_class,
            "integrity-write.sh",
            integrity_env,
            options,
            data_volume=claim,
        ),
        integrity_verify=suite_job(
            f"{base}-integrity-verify",
            "integrity-verify",
            storage_class,
            "integrity-verify.sh",
            integrity_env,
            options,
            data_volume=claim,
        ),
        fio=suite_job(f"{base}-fio", "fio", storage_class, "run-fio.sh", fio_env, options, data_volume=claim),
    )


def suite_documents(storage_classes: Sequence[str], options: SuiteOptions) -> list[dict[str, Any]]:
    """Every object of the suite, in an order ``kubectl apply -f`` accepts."""
    documents = [namespace_object(options), config_map(options)]
    for storage_class in storage_classes:
        suite = class_suite(storage_class, options)
        documents.extend([suite.pvc, *suite.jobs])
    return documents


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the scripts) as literal blocks, so the manifest reads like the scripts, and
    repeats shared values instead of writing YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)

_HEADER = """\
# The automated volume test suite. `couchestor volumes test` applies these objects step by step, times them and
# grades the results; this file is for running it with kubectl alone. Regenerate it with:
#   couchestor volumes render-suite > manifests/volumes/tests/automated-test-suite.yaml
# The Jobs of one StorageClass share its ReadWriteOnce PVC, so apply them one step at a time:
#   T=couchestor.billyronks.io/test
#   kubectl apply -f automated-test-suite.yaml -l "$T notin (integrity-verify, fio)"
#   kubectl wait -n {namespace} --for=condition=complete job -l $T=integrity-write --timeout=15m
#   kubectl apply -f automated-test-suite.yaml -l $T=integrity-verify
#   kubectl wait -n {namespace} --for=condition=complete job -l $T=integrity-verify --timeout=15m
#   kubectl apply -f automated-test-suite.yaml -l $T=fio
#   kubectl wait -n {namespace} --for=condition=complete job -l $T=fio --timeout=15m
# (a Job that fails never becomes complete: `kubectl get jobs -n {namespace}` shows it). Then grade the logs:
#   kubectl logs -n {namespace} -l purpose=testing --tail=-1 > results.log
#   couchestor volumes report results.log
"""


def dump_documents(documents: Sequence[dict[str, Any]], header: str) -> str:
    """``documents`` as one multi-document YAML text after ``header`` (comment lines)."""
    body = "---\n".join(
        yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=110) for document in documents
    )
    return header + "---\n" + body


def render_suite_yaml(storage_classes: Sequence[str], options: SuiteOptions) -> str:
    """The suite as one multi-document YAML text with an explanatory header."""
    return dump_documents(
        suite_documents(storage_classes, options), _HEADER.format(namespace=options.namespace)
    )
