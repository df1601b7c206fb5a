"""Label and annotation keys CoucheStor writes on other objects, or reads from them: part of its wire contract."""

GROUP = "storage.billyronks.io"

#: PV annotation: when the volume last finished a migration (RFC 3339); drives the cooldown.
LAST_MIGRATION = f"{GROUP}/last-migration"
#: PV label: the tier the volume's Synced replicas are on (``kubectl get pv -L storage.billyronks.io/tier``).
TIER_LABEL = f"{GROUP}/tier"
#: PVC annotation, set by the user: the tier (``hot``, ``warm``, ``cold``) the claim's volume is kept on.
PIN = f"{GROUP}/pin"
#: PVC annotation, set by the user: when :data:`PIN` ends (RFC 3339); from then on the pin is ignored.
PIN_UNTIL = f"{GROUP}/pin-until"
#: PVC annotation, set by the user: ``"true"`` excludes the claim's volume from tiering (never moved).
EXCLUDE = f"{GROUP}/exclude"
#: MayastorVolume annotation: the intent of the migration in progress (JSON), so a restarted or newly
#: elected operator can finish or roll it back.
MIGRATION_INTENT = f"{GROUP}/migration"

#: The Mayastor CSI driver name, on PVs it provisioned.
MAYASTOR_CSI_DRIVER = "io.openebs.csi-mayastor"
#: StoragePolicy annotation: ``"true"`` stops new moves of the policy at once (running ones finish).
PAUSED = f"{GROUP}/paused"
#: TierMigration label: the StoragePolicy the move belongs to (for listing and history garbage collection).
POLICY_LABEL = f"{GROUP}/policy"
#: TierMigration annotation, set by the operator when it creates one: the policy's ``metadata.generation``
#: the move was planned under (a later spec change cancels the move while it has not started).
POLICY_GENERATION = f"{GROUP}/policy-generation"
