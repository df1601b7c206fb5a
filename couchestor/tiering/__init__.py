"""The tiering domain: which volume belongs on which tier, and the loop that makes it so.

Pure core (plain data in, plain data out, no I/O):

- :mod:`.policy`: StoragePolicy compiled into :class:`~.policy.PolicyRules` (tiers, watermarks, hysteresis).
- :mod:`.heat`: heat-score queries and snapshots; :mod:`.windows`: maintenance windows and blackouts.
- :mod:`.views`: what the decisions need of the watched objects, and the incremental :class:`~.views.ViewIndex`.
- :mod:`.plan`: the vocabulary of a decision pass (options, decisions, planned migrations, plans).
- :mod:`.placement`, :mod:`.pressure` (tier fill, ``maxTierFillPercent``), :mod:`.judge`, :mod:`.schedule`,
  :mod:`.groups`: the steps of a pass;
  :mod:`.decide`: the full pass; :mod:`.incremental`: the same plan, re-judging only what changed.
- :mod:`.status`: StoragePolicy status from a plan; :mod:`.admission` and :mod:`.tiermigration`: approvals,
  windows and the TierMigration record of a move.

At the edges: :mod:`.scores` (Prometheus, cached snapshots) and :mod:`.reconcile` (the operator's reconcile
loop over the watched stores). Infrastructure (endpoints, metrics, settings, leader election, logs, the
Kubernetes client) lives beside this package in :mod:`couchestor`; this package imports it, and it imports
this package only for the types :mod:`couchestor.metrics` reports. The CLI commands over this core
(:mod:`couchestor.explain`, :mod:`couchestor.preview`) stay beside :mod:`couchestor.cli`.
"""
