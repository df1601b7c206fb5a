"""Safe migrations between tiers: add a replica on the target tier, wait until it is Synced, remove the old.

- :mod:`.intent` -- the migration intent recorded on the volume, so any operator instance can finish or undo it.
- :mod:`.backend` -- the volume backend interface (what a migration needs from Mayastor) and its state type.
- :mod:`.crd` -- the backend for the seeds' MayastorVolume custom resource.
- :mod:`.plan` -- pure step decisions: what to do next given the volume's state and the intent.
- :mod:`.runner` -- the tasks that run migrations under concurrency limits, and the restart recovery.
"""
