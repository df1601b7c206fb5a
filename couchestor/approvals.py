"""``couchestor approve NAME...`` and ``couchestor decline NAME...``: answer a TierMigration awaiting approval.

Each sets ``spec.approved`` (true or false) on the named TierMigrations with a merge patch guarded by the
object's ``resourceVersion``, exactly what ``kubectl patch tm NAME --type merge -p
'{"spec":{"approved":true}}'`` does, after checking that the answer still means something: a finished or
cancelled move, a move already answered the other way, or a move already running (decline: cancel it with
``spec.cancel`` instead) is refused with a one-line error. Answering a move the same way twice is not an
error. Exit status: 0 when every name was answered, 2 otherwise (each problem on its own line).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

import trio
from msgspec import UNSET

from couchestor.errors import UserError
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_config
from couchestor.kube.errors import ApiError, Conflict, NotFound
from k8s_schemas.tier_migration import TERMINAL_PHASES, TierMigration

#: Phases in which a move has not started: it can still be approved or declined.
UNSTARTED = frozenset({"Pending", "Planned", "AwaitingApproval", "Scheduled"})
#: Attempts when the object changes between the read and the guarded write.
_ATTEMPTS = 3


def add_parser(sub: Any) -> None:
    for verb, value, text in (
        ("approve", True, "approve TierMigrations awaiting approval (sets spec.approved: true)"),
        ("decline", False, "decline TierMigrations awaiting approval (sets spec.approved: false)"),
    ):
        parser: argparse.ArgumentParser = sub.add_parser(verb, help=text, description=text)
        parser.add_argument("names", nargs="+", metavar="NAME", help="TierMigration name (kubectl get tm)")
        parser.add_argument(
            "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)"
        )
        parser.add_argument("--context", help="kubeconfig context to use")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per API call (%(default)g)")
        parser.set_defaults(func=partial(_main, approved=value))


def _main(args: argparse.Namespace, *, approved: bool) -> int:
    config = load_config(args.kubeconfig, args.context)
    problems: list[str] = trio.run(partial(_answer_all, config, args.names, approved, args.timeout))
    for problem in problems:
        print(f"couchestor: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


async def _answer_all(config: Any, names: list[str], approved: bool, call_timeout: float) -> list[str]:
    problems: list[str] = []
    async with KubeClient(config, timeout=call_timeout) as client:
        for name in names:
            try:
                print(await answer(client, name, approved=approved))
            except UserError as exc:
                problems.append(str(exc))
    return problems


async def answer(client: KubeClient, name: str, *, approved: bool) -> str:
    """Set ``spec.approved`` on TierMigration ``name``; returns the line to print, raises :class:`UserError`
    saying why the answer cannot be given."""
    verb = "approved" if approved else "declined"
    for _ in range(_ATTEMPTS):
        try:
            tm = await client.get(resources.TIER_MIGRATION, name, type=TierMigration)
        except NotFound:
            raise UserError(f"tiermigration {name!r} not found") from None
        except ApiError as exc:
            raise UserError(f"tiermigration {name!r}: {exc}") from None
        unchanged = _check(tm, name, approved)
        if unchanged:
            return f"tiermigration.storage.billyronks.io/{name} already {verb}"
        patch = {
            "metadata": {"resourceVersion": tm.metadata.resource_version},
            "spec": {"approved": approved},
        }
        try:
            await client.merge_patch(resources.TIER_MIGRATION, name, patch, type=dict)
        except Conflict:
            continue  # changed since the read: check again
        except NotFound:
            raise UserError(f"tiermigration {name!r} was deleted") from None
        except ApiError as exc:
            raise UserError(f"tiermigration {name!r}: {exc.message or exc}") from None
        return f"tiermigration.storage.billyronks.io/{name} {verb}"
    raise UserError(f"tiermigration {name!r} kept changing; try again")


def _check(tm: TierMigration, name: str, approved: bool) -> bool:
    """True when ``tm`` already carries this answer; raises :class:`UserError` when it cannot take it."""
    status = tm.status
    phase = None if status is UNSET or status.phase is UNSET else status.phase
    if tm.spec.approved is approved:
        return True
    if tm.spec.cancel or tm.metadata.deletion_timestamp is not UNSET:
        raise UserError(f"tiermigration {name!r} is cancelled")
    if phase in TERMINAL_PHASES:
        raise UserError(f"tiermigration {name!r} is finished ({phase})")
    if tm.spec.approved is not None:
        was = "approved" if tm.spec.approved else "declined"
        hint = "; to stop it, set spec.cancel: true" if tm.spec.approved else ""
        raise UserError(f"tiermigration {name!r} was already {was}: an answer is given once{hint}")
    if phase is not None and phase not in UNSTARTED and not approved:
        raise UserError(
            f"tiermigration {name!r} is already running ({phase}); to stop it, set spec.cancel: true"
        )
    return False
