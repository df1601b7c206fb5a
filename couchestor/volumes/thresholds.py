"""The success criteria of the volume test suite, per StorageClass, and the file they are read from.

The defaults are the criteria of the platform's volume guide (:data:`DEFAULT_THRESHOLDS_YAML`; the same text
ships as ``manifests/volumes/thresholds.yaml``). Users edit a copy and pass it with ``--thresholds FILE``;
``couchestor volumes thresholds`` prints the defaults to start from. A criterion left out of a class is not
graded for it.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from couchestor.errors import UserError

DEFAULT_THRESHOLDS_YAML = """\
# Success criteria of `couchestor volumes test` and `couchestor volumes report`, per StorageClass.
# Edit a copy and pass it with --thresholds FILE. A criterion left out is not graded for that class.
#
#   pvcBoundSeconds    the PVC is Bound in less than this (seconds, from creation)
#   podMountSeconds    the test pod has its volume mounted in less than this (seconds, from pod creation)
#   seqWriteMBps       sequential 1 MiB writes faster than this (MB/s, 1 MB = 1,000,000 bytes)
#   seqReadMBps        sequential 1 MiB reads faster than this (MB/s)
#   randomRead4kIOPS   4 KiB random reads at queue depth 32: more IOPS than this
#   latencyMs          4 KiB random reads at queue depth 1: mean latency below this (milliseconds)
#   latencyP99Ms       optional, the same reads: 99th percentile completion latency below this (milliseconds);
#                      the guide sets no such criterion, so no class below has one
#   integrityPercent   share of checksummed files intact after a remount (100 = every file)
storageClasses:
  fast-ssd:
    pvcBoundSeconds: 30
    podMountSeconds: 60
    seqWriteMBps: 500
    seqReadMBps: 800
    randomRead4kIOPS: 10000
    latencyMs: 1
    integrityPercent: 100
  standard-storage:
    pvcBoundSeconds: 60
    podMountSeconds: 60
    seqWriteMBps: 100
    seqReadMBps: 200
    randomRead4kIOPS: 3000
    latencyMs: 10
    integrityPercent: 100
  backup-storage:
    # Backups are graded on provisioning and integrity only; their throughput is whatever the cold tier gives.
    pvcBoundSeconds: 60
    podMountSeconds: 60
    integrityPercent: 100
"""


class ClassThresholds(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """The criteria of one StorageClass; ``None`` leaves a criterion ungraded."""

    pvc_bound_seconds: float | None = msgspec.field(default=None, name="pvcBoundSeconds")
    pod_mount_seconds: float | None = msgspec.field(default=None, name="podMountSeconds")
    seq_write_mbps: float | None = msgspec.field(default=None, name="seqWriteMBps")
    seq_read_mbps: float | None = msgspec.field(default=None, name="seqReadMBps")
    random_read_4k_iops: float | None = msgspec.field(default=None, name="randomRead4kIOPS")
    latency_ms: float | None = msgspec.field(default=None, name="latencyMs")
    latency_p99_ms: float | None = msgspec.field(default=None, name="latencyP99Ms")
    integrity_percent: float | None = msgspec.field(default=None, name="integrityPercent")


class Thresholds(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Criteria by StorageClass name."""

    storage_classes: dict[str, ClassThresholds] = msgspec.field(name="storageClasses")

    def for_class(self, storage_class: str, *, source: str) -> ClassThresholds:
        """The criteria of ``storage_class``; a class the file does not list is a :class:`UserError`."""
        try:
            return self.storage_classes[storage_class]
        except KeyError:
            known = ", ".join(sorted(self.storage_classes)) or "none"
            raise UserError(
                f"no thresholds for StorageClass {storage_class!r} in {source} (it lists: {known}); "
                "add a section for it to a copy of the file and pass --thresholds FILE"
            ) from None


class ThresholdsError(UserError):
    """A thresholds file that cannot be read or does not have the expected shape."""


def parse_thresholds(text: str, *, source: str) -> Thresholds:
    """Thresholds from YAML (or JSON) text; ``source`` names it in error messages."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ThresholdsError(f"{source}: not valid YAML: {exc}") from None
    try:
        thresholds = msgspec.convert(document, Thresholds)
    except msgspec.ValidationError as exc:
        raise ThresholdsError(f"{source}: {exc}") from None
    except UnicodeError:
        # YAML's "\ud800"-style escapes can produce lone surrogates, which are no text at all.
        raise ThresholdsError(f"{source}: holds an escaped character that is not valid Unicode") from None
    for name, criteria in thresholds.storage_classes.items():
        for field in msgspec.structs.fields(ClassThresholds):
            value = getattr(criteria, field.name)
            if value is not None and value < 0:
                raise ThresholdsError(
                    f"{source}: storageClasses.{name}.{field.encode_name} must not be negative"
                )
    return thresholds


def default_thresholds() -> Thresholds:
    """The shipped criteria."""
    return parse_thresholds(DEFAULT_THRESHOLDS_YAML, source="the default thresholds")


def load_thresholds(path: str | None) -> tuple[Thresholds, str]:
    """The thresholds in ``path``, or the defaults when ``path`` is None; with the name to show for them."""
    if path is None:
        return default_thresholds(), "the default thresholds"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsError(f"cannot read thresholds file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ThresholdsError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    return parse_thresholds(text, source=path), path
