"""``couchestor volumes``: run the volume test suite on a cluster, grade fio results, print the manifests.

Exit status of ``test`` and ``report``: 0 when every StorageClass meets its criteria, 1 when one does not,
2 for bad input (unreadable files, unknown StorageClass, cluster unreachable), as for every command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import trio

from couchestor.errors import UserError
from couchestor.volumes.attachment import DEFAULT_SHARED_CLASS, render_attachment_yaml
from couchestor.volumes.cluster import KubectlCluster
from couchestor.volumes.fio import size_bytes
from couchestor.volumes.grading import ClassReport, grade
from couchestor.volumes.measurements import Measurements, from_file_text, merge_by_class
from couchestor.volumes.report import render_report
from couchestor.volumes.runner import RunSettings, run_suite
from couchestor.volumes.suite import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    DEFAULT_STORAGE_CLASSES,
    SuiteOptions,
    render_suite_yaml,
)
from couchestor.volumes.thresholds import DEFAULT_THRESHOLDS_YAML, Thresholds, load_thresholds
from k8s_schemas.quantity import parse_quantity

_IMAGE_HELP = "image with fio 3.x, a POSIX shell and coreutils (%(default)s)"


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "volumes", help="volume test suite: run it on a cluster, grade fio results, print its manifests"
    )
    commands = parser.add_subparsers(dest="volumes_command", metavar="SUBCOMMAND", required=True)

    test = commands.add_parser("test", help="run the suite on a cluster and grade it per StorageClass")
    test.add_argument("--kubeconfig", help="kubeconfig file (default: kubectl's own default)")
    test.add_argument("--context", help="kubeconfig context to use")
    test.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="namespace for the test objects (%(default)s)"
    )
    test.add_argument(
        "--storage-class",
        action="append",
        dest="storage_classes",
        metavar="NAME",
        help=f"StorageClass to test; repeat for several (default: {', '.join(DEFAULT_STORAGE_CLASSES)})",
    )
    _thresholds_argument(test)
    test.add_argument(
        "--timeout",
        type=_positive,
        default=900.0,
        help="seconds to wait for each PVC and each Job (%(default)g)",
    )
    test.add_argument("--image", default=DEFAULT_IMAGE, help=_IMAGE_HELP)
    test.add_argument("--pvc-size", default="10Gi", help="size of each test PVC (%(default)s)")
    test.add_argument("--fio-size", default="2g", help="size of fio's test file (%(default)s)")
    test.add_argument(
        "--runtime", type=_positive_int, default=30, help="seconds each fio job runs (%(default)s)"
    )
    test.add_argument("--ioengine", default="libaio", help="fio ioengine (%(default)s)")
    test.add_argument("--kubectl", default="kubectl", help="kubectl binary (%(default)s)")
    test.add_argument(
        "--keep", action="store_true", help="leave the test PVCs and Jobs in place for inspection"
    )
    test.set_defaults(func=_test)

    report = commands.add_parser("report", help="grade fio JSON files or suite logs, without a cluster")
    _thresholds_argument(report)
    report.add_argument(
        "--storage-class",
        metavar="NAME",
        help="StorageClass for inputs that do not name one (plain fio JSON)",
    )
    report.add_argument(
        "--require-all",
        action="store_true",
        help="fail a class when any of its criteria was not measured (default: report it as not measured)",
    )
    report.add_argument(
        "files", nargs="+", metavar="FILE", help="fio JSON output, or a log with result blocks"
    )
    report.set_defaults(func=_report)

    thresholds = commands.add_parser(
        "thresholds", help="print the default criteria (a file to copy and edit)"
    )
    thresholds.set_defaults(func=_print_thresholds)

    render = commands.add_parser("render-suite", help="print the suite's manifests for kubectl apply")
    render.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="namespace of the objects (%(default)s)"
    )
    render.add_argument(
        "--storage-class",
        action="append",
        dest="storage_classes",
        metavar="NAME",
        help=f"StorageClass to test; repeat for several (default: {', '.join(DEFAULT_STORAGE_CLASSES)})",
    )
    render.add_argument("--image", default=DEFAULT_IMAGE, help=_IMAGE_HELP)
    render.set_defaults(func=_render_suite)

    attachment = commands.add_parser(
        "render-attachment", help="print the attachment tests' manifests (quick checks) for kubectl apply"
    )
    attachment.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="namespace of the objects (%(default)s)"
    )
    attachment.add_argument(
        "--storage-class",
        action="append",
        dest="storage_classes",
        metavar="NAME",
        help=f"ReadWriteOnce StorageClass to check; repeat for several (default: {', '.join(DEFAULT_STORAGE_CLASSES)})",
    )
    attachment.add_argument(
        "--shared-class",
        default=DEFAULT_SHARED_CLASS,
        metavar="NAME",
        help="ReadWriteMany StorageClass for the shared test; '' leaves it out (%(default)s)",
    )
    attachment.add_argument("--image", default=DEFAULT_IMAGE, help=_IMAGE_HELP)
    attachment.set_defaults(func=_render_attachment)


def _thresholds_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--thresholds",
        metavar="FILE",
        help="criteria file (YAML); start from `couchestor volumes thresholds` (default: the built-in criteria)",
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _grade_all(
    measured: dict[str, Measurements], thresholds: Thresholds, source: str, *, require_all: bool
) -> list[ClassReport]:
    # Look every class up first, so an unknown class is reported before any output.
    criteria = {name: thresholds.for_class(name, source=source) for name in measured}
    return [grade(measured[name], criteria[name], require_all=require_all) for name in measured]


def _report(args: argparse.Namespace) -> int:
    thresholds, source = load_thresholds(args.thresholds)
    items: list[Measurements] = []
    for name in args.files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UserError(f"cannot read {name}: {exc.strerror}") from None
        items.extend(from_file_text(text, source=name, storage_class=args.storage_class))
    reports = _grade_all(merge_by_class(items), thresholds, source, require_all=args.require_all)
    sys.stdout.write(render_report(reports, thresholds_source=source))
    return 0 if all(r.passed for r in reports) else 1


def _test(args: argparse.Namespace) -> int:
    thresholds, source = load_thresholds(args.thresholds)
    classes = tuple(args.storage_classes or DEFAULT_STORAGE_CLASSES)
    for name in classes:
        thresholds.for_class(name, source=source)  # fail before touching the cluster
    _check_sizes(args.pvc_size, args.fio_size)
    options = SuiteOptions(
        namespace=args.namespace,
        image=args.image,
        pvc_size=args.pvc_size,
        fio_size=args.fio_size,
        fio_runtime_seconds=args.runtime,
        fio_ioengine=args.ioengine,
        job_deadline_seconds=int(args.timeout),
    )
    cluster = KubectlCluster(kubeconfig=args.kubeconfig, context=args.context, kubectl=args.kubectl)
    settings = RunSettings(timeout=args.timeout, keep=args.keep)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    measured = trio.run(run_suite, cluster, classes, options, settings, progress)
    reports = _grade_all(merge_by_class(measured), thresholds, source, require_all=True)
    sys.stdout.write(render_report(reports, thresholds_source=source))
    return 0 if all(r.passed for r in reports) else 1


# fio's file must fit on the claim with room for the filesystem's own metadata.
_FIO_SHARE_OF_CLAIM = 0.9


def _check_sizes(pvc_size: str, fio_size: str) -> None:
    """Refuse sizes kubectl or fio would reject, or a fio file that cannot fit on the claim, before any object
    is created."""
    try:
        claim = parse_quantity(pvc_size)
    except ValueError:
        raise UserError(f"--pvc-size {pvc_size!r} is not a Kubernetes quantity (e.g. 10Gi)") from None
    data = size_bytes(fio_size)
    if data is None or data == 0:
        raise UserError(f"--fio-size {fio_size!r} is not a size fio reads (e.g. 2g, 512m)")
    if data > claim * _FIO_SHARE_OF_CLAIM:
        raise UserError(
            f"--fio-size {fio_size} does not fit on a --pvc-size {pvc_size} claim with room for its filesystem; "
            f"use at most {_FIO_SHARE_OF_CLAIM:.0%} of the claim"
        )


def _print_thresholds(args: argparse.Namespace) -> int:
    sys.stdout.write(DEFAULT_THRESHOLDS_YAML)
    return 0


def _render_suite(args: argparse.Namespace) -> int:
    classes = tuple(args.storage_classes or DEFAULT_STORAGE_CLASSES)
    sys.stdout.write(render_suite_yaml(classes, SuiteOptions(namespace=args.namespace, image=args.image)))
    return 0


def _render_attachment(args: argparse.Namespace) -> int:
    classes = tuple(args.storage_classes or DEFAULT_STORAGE_CLASSES)
    options = SuiteOptions(namespace=args.namespace, image=args.image)
    sys.stdout.write(render_attachment_yaml(classes, args.shared_class or None, options))
    return 0
