"""The volume attachment tests as Kubernetes objects: quick checks that every kind of volume works at all.

Per StorageClass one claim and one Job (``attach-<class>``) that mounts it, writes and reads back a file, then
runs a short pass of the suite's fio job file and prints fio's JSON document between result markers, so
``couchestor volumes report`` grades the Jobs' logs. Besides: two Jobs that share one ReadWriteMany claim of
the shared class and each wait to see the other's file (on two nodes where the scheduler can), and one Job
whose memory-backed emptyDir must be a tmpfs. The scripts are the suite's ConfigMap's
(:mod:`couchestor.volumes.suite`); the shipped ``manifests/volumes/tests/volume-attachment-tests.yaml`` is
:func:`render_attachment_yaml` of the defaults (a test keeps the two equal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from couchestor.volumes.suite import (
    DATA_DIR,
    DEFAULT_STORAGE_CLASSES,
    STORAGE_CLASS_LABEL,
    TEST_LABEL,
    SuiteOptions,
    config_map,
    dump_documents,
    fio_environment,
    labels_for,
    namespace_object,
    object_base_name,
    suite_job,
)

DEFAULT_SHARED_CLASS = "standard-storage-shared"
ATTACHMENT_TEST = "attachment"
# The fio pass of an attachment test is a smoke test, not a benchmark: each of the five jobs runs this long.
ATTACHMENT_FIO_SECONDS = 5
ATTACHMENT_FIO_SIZE = "256m"
ATTACHMENT_CLAIM_SIZE = "1Gi"
MEMORY_SIZE_LIMIT = "256Mi"


def _claim(name: str, storage_class: str, access_mode: str, options: SuiteOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels_for(storage_class)},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": [access_mode],
            "resources": {"requests": {"storage": ATTACHMENT_CLAIM_SIZE}},
        },
    }


def _class_check(storage_class: str, options: SuiteOptions) -> list[dict[str, Any]]:
    name = "attach-" + object_base_name(storage_class).removeprefix("vt-")
    fio_options = dataclasses.replace(
        options, fio_runtime_seconds=ATTACHMENT_FIO_SECONDS, fio_ramp_seconds=1, fio_size=ATTACHMENT_FIO_SIZE
    )
    job = suite_job(
        name,
        ATTACHMENT_TEST,
        storage_class,
        "attach-check.sh",
        {"DATA_DIR": DATA_DIR, **fio_environment(fio_options)},
        options,
        data_volume={"persistentVolumeClaim": {"claimName": name}},
    )
    return [_claim(name, storage_class, "ReadWriteOnce", options), job]


def _shared_check(storage_class: str, options: SuiteOptions) -> list[dict[str, Any]]:
    name = "attach-" + object_base_name(storage_class).removeprefix("vt-")
    # Preferred, not required: a one-node cluster still runs the test (sharing between pods on one node).
    spread = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {
                            "matchLabels": {
                                STORAGE_CLASS_LABEL: labels_for(storage_class)[STORAGE_CLASS_LABEL]
                            }
                        },
                    },
                }
            ]
        }
    }
    jobs = [
        suite_job(
            f"{name}-{me}",
            ATTACHMENT_TEST,
            storage_class,
            "shared-check.sh",
            {"DATA_DIR": DATA_DIR, "SHARED_SELF": me, "SHARED_PEER": peer, "SHARED_WAIT": "120"},
            options,
            data_volume={"persistentVolumeClaim": {"claimName": name}},
            affinity=spread,
        )
        for me, peer in (("a", "b"), ("b", "a"))
    ]
    return [_claim(name, storage_class, "ReadWriteMany", options), *jobs]


def _memory_check(options: SuiteOptions) -> dict[str, Any]:
    return suite_job(
        "attach-memory",
        ATTACHMENT_TEST,
        "memory",
        "attach-check.sh",
        {"DATA_DIR": DATA_DIR, "EXPECT_FSTYPE": "tmpfs", "RUN_FIO": "0"},
        options,
        data_volume={"emptyDir": {"medium": "Memory", "sizeLimit": MEMORY_SIZE_LIMIT}},
    )


def attachment_documents(
    storage_classes: Sequence[str], shared_class: str | None, options: SuiteOptions
) -> list[dict[str, Any]]:
    """Every object of the attachment tests, in an order ``kubectl apply -f`` accepts; ``shared_class`` None
    leaves the shared test out."""
    documents = [namespace_object(options), config_map(options)]
    for storage_class in storage_classes:
        documents.extend(_class_check(storage_class, options))
    if shared_class is not None:
        documents.extend(_shared_check(shared_class, options))
    documents.append(_memory_check(options))
    return documents


_HEADER = """\
# Volume attachment tests: does each StorageClass provision a volume that a pod can mount, write and read back
# (then a short fio pass over it, 5 s per test); is the shared class really shared between two pods (on two
# nodes where possible); is the memory-backed emptyDir a tmpfs. Each Job's pod prints PASS or FAIL and exits
# 0 or 1. Regenerate with: couchestor volumes render-attachment > manifests/volumes/tests/volume-attachment-tests.yaml
#   kubectl apply -f volume-attachment-tests.yaml
#   kubectl wait -n {namespace} --for=condition=complete job -l {label}={test} --timeout=10m
#   kubectl get jobs -n {namespace} -l {label}={test}        (a Job that failed never becomes complete)
#   kubectl logs -n {namespace} -l {label}={test} --tail=-1 > attachment.log
#   couchestor volumes report attachment.log                 (grades the fio passes; timings are not measured)
#   kubectl delete -f volume-attachment-tests.yaml           (before running it again)
# Timed and graded provisioning, mount, performance and integrity tests: `couchestor volumes test`.
"""


def render_attachment_yaml(
    storage_classes: Sequence[str] = DEFAULT_STORAGE_CLASSES,
    shared_class: str | None = DEFAULT_SHARED_CLASS,
    options: SuiteOptions | None = None,
) -> str:
    """The attachment tests as one multi-document YAML text with an explanatory header."""
    options = options or SuiteOptions()
    header = _HEADER.format(namespace=options.namespace, label=TEST_LABEL, test=ATTACHMENT_TEST)
    return dump_documents(attachment_documents(storage_classes, shared_class, options), header)
