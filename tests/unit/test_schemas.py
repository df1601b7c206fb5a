"""Wire shapes of k8s_schemas: field names as the CRDs and seeds spell them, minimal encodings, tolerant decoding."""

import msgspec
import pytest
from msgspec import UNSET

from k8s_schemas import DiskPool, MayastorVolume, ObjectList, PersistentVolume, Status, StoragePolicy
from k8s_schemas.core import ClaimReference, PersistentVolumeClaim
from k8s_schemas.mayastor import GROUP, MAYASTOR_VOLUME_VERSION
from k8s_schemas.meta import Condition, ObjectMeta, RawWatchEvent
from k8s_schemas.quantity import format_bytes, parse_quantity
from k8s_schemas.storage_policy import MigrationHistoryEntry, SpecError, StoragePolicyStatus, parse_spec

SEED_POLICY = b"""{
  "apiVersion": "storage.billyronks.io/v1", "kind": "StoragePolicy",
  "metadata": {"name": "my-first-policy", "generation": 3},
  "spec": {"storageClassName": "mayastor", "highWatermarkIOPS": 7000, "lowWatermarkIOPS": 700,
           "warmWatermarkIOPS": 3000, "nvmePoolSelector": {"matchLabels": {"tier": "hot"}},
           "sataPoolSelector": {"matchLabels": {"tier": "cold"}}, "enabled": true, "dryRun": true}
}"""


def test_policy_thresholds_use_the_crd_spelling():
    policy = msgspec.json.decode(SEED_POLICY, type=StoragePolicy)
    spec = parse_spec(policy.spec)
    # The seeds' operator read `highWatermarkIops` and silently ran on defaults; these must be the user's values.
    assert (spec.high_watermark_iops, spec.low_watermark_iops, spec.warm_watermark_iops) == (7000, 700, 3000)
    assert spec.dry_run is True
    encoded = msgspec.json.decode(msgspec.json.encode(spec))
    assert {"highWatermarkIOPS", "lowWatermarkIOPS", "warmWatermarkIOPS"} <= encoded.keys()
    assert not any(key.endswith("Iops") for key in encoded)


def test_policy_spec_defaults_match_the_design():
    spec = parse_spec({})
    assert spec.storage_class_name == "mayastor"
    assert (spec.high_watermark_iops, spec.low_watermark_iops, spec.warm_watermark_iops) == (5000, 500, None)
    assert (spec.sampling_window, spec.cooldown_period, spec.migration_timeout) == ("1h", "24h", "30m")
    assert (spec.max_concurrent_migrations, spec.enabled, spec.dry_run) == (2, True, False)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"highWatermarkIOPS": "lots"}, "spec.highWatermarkIOPS"),
        ({"lowWatermarkIOPS": -1}, "spec.lowWatermarkIOPS"),
        ({"samplingWindow": "1 hour"}, "spec.samplingWindow"),
        ({"maxConcurrentMigrations": 0}, "spec.maxConcurrentMigrations"),
        (
            {"volumeSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
            "spec.volumeSelector.matchExpressions[0].operator",
        ),
    ],
)
def test_bad_policy_spec_names_the_field(raw, field):
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")


def test_status_encodes_only_what_was_set():
    status = StoragePolicyStatus(phase="Active", watched_volumes=0)
    assert msgspec.json.encode({"status": status}) == b'{"status":{"phase":"Active","watchedVolumes":0}}'


def test_history_entry_uses_trigger_iops_spelling():
    entry = MigrationHistoryEntry(
        volume_name="pvc-1",
        timestamp="2026-01-01T00:00:00Z",
        from_tier="cold",
        to_tier="hot",
        trigger_iops=6500.0,
        duration="4m12s",
        success=True,
    )
    wire = msgspec.json.decode(msgspec.json.encode(entry))
    assert wire["triggerIOPS"] == 6500.0
    assert "error" not in wire


def test_list_envelope_and_continue_token():
    body = b"""{"kind":"PersistentVolumeList","apiVersion":"v1",
      "metadata":{"resourceVersion":"812","continue":"tok"},
      "items":[{"metadata":{"name":"pvc-a","labels":{"x":"y"},"managedFields":[{"manager":"k"}]},
                "spec":{"storageClassName":"mayastor","csi":{"driver":"io.openebs.csi-mayastor","volumeHandle":"u-1"},
                        "claimRef":{"namespace":"ns","name":"data"}},
                "status":{"phase":"Bound"}}]}"""
    pvs = msgspec.json.decode(body, type=ObjectList[PersistentVolume])
    assert pvs.metadata.resource_version == "812"
    assert pvs.metadata.continue_ == "tok"
    pv = pvs.items[0]
    assert pv.volume_handle == "u-1"
    assert pv.metadata.label("x") == "y"
    assert pv.metadata.annotation("missing") is None


def test_watch_event_object_is_decoded_by_type():
    line = b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"too old"}}'
    event = msgspec.json.decode(line, type=RawWatchEvent)
    status = msgspec.json.decode(event.object, type=Status)
    assert (event.type, status.code, status.reason) == ("ERROR", 410, "Expired")


def test_mayastor_volume_seed_shape():
    body = b"""{"metadata":{"name":"pvc-abc123"},"spec":{"numReplicas":2,
      "topology":{"pool":{"labelled":{"inclusion":{"tier":"hot"}}}}},
      "status":{"state":"Online","replicas":[
        {"pool":"pool-sata-1","node":"n1","state":"Online","syncState":"Synced"},
        {"pool":"pool-nvme-1","node":"n2","state":"Online","syncState":"Syncing","rebuildProgress":40}]}}"""
    vol = msgspec.json.decode(body, type=MayastorVolume)
    assert vol.spec.num_replicas == 2
    assert vol.spec.inclusion == {"tier": "hot"}
    assert [r.healthy for r in vol.replicas] == [True, False]
    assert vol.replicas[1].rebuild_progress == 40


@pytest.mark.parametrize(
    ("status", "health", "free"),
    [
        ({"pool_status": "Online", "cr_state": "Created", "capacity": 1000, "used": 250}, "Online", 750),
        ({"pool_status": "Degraded", "capacity": 1000, "used": 250, "available": 700}, "Degraded", 700),
        ({"state": "Faulted", "capacity": "2Ki", "used": "1Ki"}, "Faulted", 1024),
        ({}, "Unknown", None),
    ],
)
def test_diskpool_status_both_spellings(status, health, free):
    pool = msgspec.convert({"metadata": {"name": "p", "labels": {"tier": "hot"}}, "status": status}, DiskPool)
    assert pool.health == health
    assert pool.free_bytes == free


def test_diskpool_topology_labels_overlay_metadata_labels():
    pool = msgspec.convert(
        {
            "metadata": {"name": "p", "labels": {"tier": "cold", "a": "1"}},
            "spec": {"topology": {"labelled": {"tier": "hot"}}},
        },
        DiskPool,
    )
    assert pool.topology_labels == {"tier": "hot", "a": "1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500Gi", 500 * 2**30),
        ("1.5T", 1_500_000_000_000),
        ("100m", 1),
        ("2e3", 2000),
        ("7", 7),
        ("64Mi", 2**26),
    ],
)
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("bad", ["", "Gi", "5 Gi", "1.2.3", "10Zi", "ten"])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(bad)


def test_format_bytes_round_trips_whole_units():
    for text in ["500Gi", "1Ti", "64Mi"]:
        assert format_bytes(parse_quantity(text)) == text


def test_condition_and_meta_are_minimal_on_the_wire():
    meta = ObjectMeta(name="x", annotations={"a": "b"})
    assert msgspec.json.encode(meta) == b'{"name":"x","annotations":{"a":"b"}}'
    cond = Condition(type="Ready", status="True", last_transition_time="t", reason="Ok")
    assert msgspec.json.decode(msgspec.json.encode(cond))["lastTransitionTime"] == "t"
    assert StoragePolicy().status is UNSET


def test_cached_pvs_and_pvcs_keep_only_what_the_operator_reads():
    # The watch caches hold one PV and one PVC per volume: a field kept, or a repeated string copied into
    # every object, costs its size 100,000 times over.
    pv_doc = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": "pvc-1",
            "uid": "7f0c",
            "resourceVersion": "12",
            "creationTimestamp": "2026-12-06T18:00:00Z",
            "finalizers": ["kubernetes.io/pv-protection"],
            "annotations": {"pv.kubernetes.io/provisioned-by": "io.openebs.csi-mayastor"},
        },
        "spec": {
            "storageClassName": "mayastor",
            "capacity": {"storage": "10Gi"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": "team",
                "name": "data",
            },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": "Filesystem",
            "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": "u-1", "fsType": "ext4"},
        },
    }
    pvc_doc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "team"},
        "spec": {
            "storageClassName": "mayastor",
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "10Gi"}},
            "volumeName": "pvc-1",
        },
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}},
    }
    pvs = [msgspec.json.decode(msgspec.json.encode(pv_doc), type=PersistentVolume) for _ in range(2)]
    pvcs = [msgspec.json.decode(msgspec.json.encode(pvc_doc), type=PersistentVolumeClaim) for _ in range(2)]
    assert pvs[0].kind is pvs[1].kind
    assert pvs[0].api_version is pvs[1].api_version
    assert pvcs[0].kind is pvcs[1].kind
    assert pvcs[0].api_version is pvcs[1].api_version
    # What the operator reads is there; the rest was skipped when decoding.
    assert (pvs[0].spec.storage_class_name, pvs[0].volume_handle) == ("mayastor", "u-1")
    assert pvs[0].capacity_bytes == 10 * 2**30
    assert pvs[0].spec.claim_ref == ClaimReference(namespace="team", name="data")
    assert (pvcs[0].spec.volume_name, pvcs[0].status.phase) == ("pvc-1", "Bound")  # type: ignore[union-attr]
    assert msgspec.json.decode(msgspec.json.encode(pvs[0]))["spec"].keys() == {
        "storageClassName",
        "capacity",
        "csi",
        "claimRef",
    }
    assert msgspec.json.decode(msgspec.json.encode(pvs[0]))["metadata"].keys() == {
        "name",
        "uid",
        "resourceVersion",
        "annotations",
    }
    assert msgspec.json.decode(msgspec.json.encode(pvcs[0]))["spec"].keys() == {
        "storageClassName",
        "volumeName",
    }


def test_cached_mayastor_volumes_share_their_api_version_and_kind():
    doc = msgspec.json.encode(
        {
            "apiVersion": f"{GROUP}/{MAYASTOR_VOLUME_VERSION}",
            "kind": "MayastorVolume",
            "metadata": {"name": "v"},
        }
    )
    first, second = (msgspec.json.decode(doc, type=MayastorVolume) for _ in range(2))
    assert first.api_version == f"{GROUP}/{MAYASTOR_VOLUME_VERSION}"
    assert first.api_version is second.api_version
    assert first.kind is second.kind
