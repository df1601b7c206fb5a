"""CustomResourceDefinitions built from the Structs, so the CRD YAML can never drift from the code.

:func:`structural_schema` turns msgspec's JSON Schema into the *structural* OpenAPI v3 subset Kubernetes
requires: references inlined, ``Optional`` as ``nullable``, ``int | str`` as ``x-kubernetes-int-or-string``,
no ``title`` and no ``null`` defaults (an absent field means "not set").
"""

from __future__ import annotations

from typing import Any

import msgspec

from k8s_schemas import mayastor, replication, storage_policy, tier_migration

JSON = dict[str, Any]


def structural_schema(struct: type) -> JSON:
    """The structural OpenAPI v3 schema of a msgspec Struct type."""
    raw = msgspec.json.schema(struct)
    defs: JSON = raw.get("$defs", {})

    def convert(node: JSON) -> JSON:
        if "$ref" in node:
            merged = {
                **defs[node["$ref"].rsplit("/", 1)[1]],
                **{k: v for k, v in node.items() if k != "$ref"},
            }
            return convert(merged)
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            nullable = len(options) < len(node["anyOf"])
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            types = {o.get("type") for o in options}
            if types == {"integer", "string"}:
                out: JSON = {"x-kubernetes-int-or-string": True}
            elif len(options) == 1:
                out = convert({**options[0], **rest})
            else:  # pragma: no cover - no such field in our Structs
                raise ValueError(f"cannot express {node} structurally")
            if "description" in rest:
                out["description"] = rest["description"]
            if nullable and out.get("default") is None:
                out.pop("default", None)
            return out
        out = {}
        for key, value in node.items():
            if key == "title" or (key == "default" and value is None) or (key == "required" and not value):
                continue
            if key == "description":
                value = value.replace("``", "")
            if key == "properties":
                out[key] = {name: convert(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = convert(value)
            elif isinstance(value, tuple):
                out[key] = list(value)  # JSON's array, whether the CRD is sent over HTTP or handed in-process
            else:
                out[key] = value
        if "enum" in out and "type" not in out:
            # Structural schemas need a type on every node; our enums are Literal strings.
            out["type"] = "string"
        if out.get("type") == "object" and "additionalProperties" in out and "properties" not in out:
            return out
        if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    return convert({k: v for k, v in raw.items() if k != "$defs"})


def defaulted(value: Any, schema: JSON) -> Any:
    """``value`` with the schema's ``default:`` values filled in, as the API server applies them.

    An object's own ``default`` must satisfy its schema and rules as written (the API server validates
    every default when the CRD is written, without applying the nested defaults first), so a spec that
    defaults to "all fields at their defaults" says so in full rather than as ``{}``.
    """
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in out and "default" in sub:
            out[name] = sub["default"]
        if name in out:
            out[name] = defaulted(out[name], sub)
    return out


def _crd(
    *,
    group: str,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    scope: str,
    version: str,
    spec: type,
    status: type,
    columns: list[JSON],
    spec_rules: list[JSON] | None = None,
    description: str,
    labels: dict[str, str] | None = None,
    spec_required: bool = False,
) -> JSON:
    """A CRD with a status subresource. The spec defaults to every field at its default (every field has one)
    unless ``spec_required``: then it is required, as a default would have to pass its rules and required
    fields."""
    spec_schema = structural_schema(spec)
    spec_schema.pop("description", None)
    spec_schema["description"] = description
    if spec_rules:
        spec_schema["x-kubernetes-validations"] = spec_rules
    status_schema = structural_schema(status)
    status_schema.pop("description", None)
    metadata: JSON = {"name": f"{plural}.{group}"}
    root: JSON = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema if spec_required else {**spec_schema, "default": defaulted({}, spec_schema)},
            "status": status_schema,
        },
    }
    if spec_required:
        root["required"] = ["spec"]
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
            },
            "scope": scope,
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _col(name: str, path: str, type_: str = "string", priority: int = 0) -> JSON:
    col: JSON = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


_AGE = _col("Age", ".metadata.creationTimestamp", "date")

STORAGE_POLICY_RULES = [
    {
        # Both watermarks are always present: they have defaults, and the spec's own default lists every
        # field (see defaulted()), which the API server checks against this rule when the CRD is written.
        "rule": "self.lowWatermarkIOPS < self.highWatermarkIOPS",
        "message": "lowWatermarkIOPS must be lower than highWatermarkIOPS",
        "fieldPath": ".lowWatermarkIOPS",
    },
    {
        # Unset or 0: no warm tier (0 as in the seeds); the compiler reads it the same way.
        "rule": "!has(self.warmWatermarkIOPS) || self.warmWatermarkIOPS == 0 || (self.warmWatermarkIOPS >"
        " self.lowWatermarkIOPS && self.warmWatermarkIOPS < self.highWatermarkIOPS)",
        "message": "warmWatermarkIOPS must be 0 (no warm tier) or lie between lowWatermarkIOPS and"
        " highWatermarkIOPS",
        "fieldPath": ".warmWatermarkIOPS",
    },
    {
        "rule": "!has(self.warmPoolSelector) || (has(self.warmWatermarkIOPS) && self.warmWatermarkIOPS > 0)",
        "message": "warmPoolSelector needs a warm tier: set warmWatermarkIOPS (above 0) too",
        "fieldPath": ".warmPoolSelector",
    },
    {
        "rule": "!has(self.maxTierFillPercent) || (self.maxTierFillPercent >= 1 && self.maxTierFillPercent <= 100)",
        "message": "maxTierFillPercent must lie between 1 and 100",
        "fieldPath": ".maxTierFillPercent",
    },
]

_SIM_LABELS = {"app.kubernetes.io/part-of": "couchestor-sim"}
_SIM_NOTE = " SIMULATION RESOURCE of CoucheStor's emulated cluster: do not install it on a cluster that runs real Mayastor."


def storage_policy_crd() -> JSON:
    return _crd(
        group=storage_policy.GROUP,
        kind="StoragePolicy",
        plural="storagepolicies",
        singular="storagepolicy",
        short_names=["sp", "spolicy"],
        scope="Cluster",
        version=storage_policy.VERSION,
        spec=storage_policy.StoragePolicySpec,
        status=storage_policy.StoragePolicyStatus,
        columns=[
            _col("Phase", ".status.phase"),
            _col("Watched", ".status.watchedVolumes", "integer"),
            _col("Hot", ".status.hotVolumes", "integer"),
            _col("Cold", ".status.coldVolumes", "integer"),
            _col("Migrating", ".status.activeMigrations", "integer"),
            _col("Dry-Run", ".spec.dryRun", "boolean"),
            _AGE,
        ],
        spec_rules=STORAGE_POLICY_RULES,
        description="Which volumes CoucheStor tiers, the IOPS watermarks that move them, and how.",
    )


def tier_migration_crd() -> JSON:
    return _crd(
        group=storage_policy.GROUP,
        kind=tier_migration.KIND,
        plural=tier_migration.PLURAL,
        singular="tiermigration",
        short_names=["tm"],
        scope="Cluster",
        version=storage_policy.VERSION,
        spec=tier_migration.TierMigrationSpec,
        status=tier_migration.TierMigrationStatus,
        columns=[
            _col("Volume", ".spec.volume"),
            _col("From", ".status.fromTier"),
            _col("To", ".spec.targetTier"),
            _col("Phase", ".status.phase"),
            _col("Progress", ".status.progress", "integer"),
            _col("Reason", ".status.reason", priority=1),
            _col("Target-Pool", ".status.targetPool", priority=1),
            _col("ETA", ".status.eta", priority=1),
            _AGE,
        ],
        spec_rules=tier_migration.TIER_MIGRATION_RULES,
        description="One tier move of one volume: requested, planned, awaiting approval, running or finished.",
        spec_required=True,
    )


def mayastor_volume_crd() -> JSON:
    return _crd(
        group=mayastor.GROUP,
        kind="MayastorVolume",
        plural="mayastorvolumes",
        singular="mayastorvolume",
        short_names=["msv"],
        scope="Namespaced",
        version=mayastor.MAYASTOR_VOLUME_VERSION,
        spec=mayastor.MayastorVolumeSpec,
        status=mayastor.MayastorVolumeStatusSchema,
        columns=[
            _col("Replicas", ".spec.numReplicas", "integer"),
            _col("State", ".status.state"),
            _col("Size", ".spec.size", "integer"),
            _AGE,
        ],
        description="A Mayastor volume (MOAC-era resource): replica count and pool topology." + _SIM_NOTE,
        labels=_SIM_LABELS,
    )


def diskpool_crd() -> JSON:
    return _crd(
        group=mayastor.GROUP,
        kind="DiskPool",
        plural="diskpools",
        singular="diskpool",
        short_names=["dsp"],
        scope="Namespaced",
        version=mayastor.DISKPOOL_VERSION,
        spec=mayastor.DiskPoolSpec,
        status=mayastor.DiskPoolStatus,
        columns=[
            _col("Node", ".spec.node"),
            _col("State", ".status.pool_status"),
            _col("Capacity", ".status.capacity", "integer"),
            _col("Used", ".status.used", "integer"),
            _AGE,
        ],
        description="A Mayastor storage pool on one node's disks." + _SIM_NOTE,
        labels=_SIM_LABELS,
    )


def _replication_crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    scope: str,
    spec: type,
    status: type | None,
    columns: list[JSON],
    description: str,
    version: str = replication.VERSION,
    spec_rules: list[JSON] | None = None,
) -> JSON:
    """A ``replication.unified.io`` CRD: like :func:`_crd`, but the spec is required (its fields have no
    defaults to fall back on) and the classes have no status."""
    spec_schema = structural_schema(spec)
    spec_schema["description"] = description
    if spec_rules:
        spec_schema["x-kubernetes-validations"] = spec_rules
    properties: JSON = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec_schema,
    }
    served: JSON = {"name": version, "served": True, "storage": True}
    if status is not None:
        status_schema = structural_schema(status)
        status_schema.pop("description", None)
        properties["status"] = status_schema
        served["subresources"] = {"status": {}}
    served["additionalPrinterColumns"] = columns
    served["schema"] = {"openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": properties}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{replication.GROUP}"},
        "spec": {
            "group": replication.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
            },
            "scope": scope,
            "versions": [served],
        },
    }


def volume_replication_crd() -> JSON:
    return _replication_crd(
        kind="VolumeReplication",
        plural="volumereplications",
        short_names=["vr", "volrep"],
        scope="Namespaced",
        spec=replication.VolumeReplicationSpec,
        status=replication.VolumeReplicationStatus,
        columns=[
            _col("State", ".status.state"),
            _col("Desired", ".spec.replicationState"),
            _col("PVC", ".spec.pvcName"),
            _col("Class", ".spec.volumeReplicationClass"),
            _AGE,
        ],
        spec_rules=replication.VOLUME_REPLICATION_RULES,
        description="Replicate one PersistentVolumeClaim to a peer site (csi-addons VolumeReplication).",
    )


def volume_replication_class_crd() -> JSON:
    return _replication_crd(
        kind="VolumeReplicationClass",
        plural="volumereplicationclasses",
        short_names=["vrc", "volrepclass"],
        scope="Cluster",
        spec=replication.VolumeReplicationClassSpec,
        status=None,
        columns=[_col("Provisioner", ".spec.provisioner"), _AGE],
        description="Which replication backend serves VolumeReplications of this class, with its parameters.",
    )


def volume_group_replication_crd() -> JSON:
    return _replication_crd(
        kind="VolumeGroupReplication",
        plural="volumegroupreplications",
        short_names=["vgr", "volgrouprep"],
        scope="Namespaced",
        spec=replication.VolumeGroupReplicationSpec,
        status=replication.VolumeGroupReplicationStatus,
        columns=[
            _col("State", ".status.state"),
            _col("Desired", ".spec.replicationState", priority=1),
            _col("Class", ".spec.volumeGroupReplicationClass"),
            # The whole list: a `[*].name` path would show only the first member (printer columns use the
            # first JSONPath result).
            _col("PVCs", ".status.persistentVolumeClaimsRefList"),
            _AGE,
        ],
        description="Replicate the PersistentVolumeClaims a selector picks as one group, all in one state.",
    )


def volume_group_replication_class_crd() -> JSON:
    return _replication_crd(
        kind="VolumeGroupReplicationClass",
        plural="volumegroupreplicationclasses",
        short_names=["vgrc", "volgrouprepclass"],
        scope="Cluster",
        spec=replication.VolumeGroupReplicationClassSpec,
        status=None,
        columns=[_col("Provisioner", ".spec.provisioner"), _AGE],
        description="Which replication backend serves VolumeGroupReplications of this class.",
    )


def unified_volume_replication_crd() -> JSON:
    return _replication_crd(
        kind="UnifiedVolumeReplication",
        plural="unifiedvolumereplications",
        short_names=["uvr", "unifiedvr"],
        scope="Namespaced",
        version=replication.LEGACY_VERSION,
        spec=replication.UnifiedVolumeReplicationSpec,
        status=replication.UnifiedVolumeReplicationStatus,
        columns=[
            _col("State", ".spec.replicationState"),
            _col("Mode", ".spec.replicationMode"),
            _col("Source", ".spec.volumeMapping.source.pvcName"),
            _col("Ready", ".status.conditions[?(@.type=='Ready')].status"),
            _AGE,
        ],
        spec_rules=replication.LEGACY_ENDPOINT_RULES,
        description="Legacy (v1alpha1) replication request; use VolumeReplication (v1alpha2) instead.",
    )


def all_crds() -> dict[str, JSON]:
    """File name (under ``manifests/crds/``) -> CRD object."""
    return {
        "storagepolicies.yaml": storage_policy_crd(),
        "tiermigrations.yaml": tier_migration_crd(),
        "sim-mayastorvolumes.yaml": mayastor_volume_crd(),
        "sim-diskpools.yaml": diskpool_crd(),
        "replication-volumereplications.yaml": volume_replication_crd(),
        "replication-volumereplicationclasses.yaml": volume_replication_class_crd(),
        "replication-volumegroupreplications.yaml": volume_group_replication_crd(),
        "replication-volumegroupreplicationclasses.yaml": volume_group_replication_class_crd(),
        "replication-unifiedvolumereplications.yaml": unified_volume_replication_crd(),
    }
