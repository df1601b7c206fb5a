"""Result blocks in pod logs: how the suite's Jobs print results and how the collector finds them again.

A Job prints each result between two marker lines, so the result survives whatever else the container writes
to the same log (fio's notes on stderr, shell tracing)::

    >>> couchestor-result kind=fio storage-class=fast-ssd exit=0 begin
    { ...fio's JSON document... }
    <<< couchestor-result end

The begin line carries ``key=value`` attributes. ``kind`` is ``fio``, ``integrity-write`` or
``integrity-verify``. Log lines must not be prefixed (``kubectl logs`` without ``--prefix``/``--timestamps``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from couchestor.errors import UserError

BEGIN_PREFIX = ">>> couchestor-result"
END_LINE = "<<< couchestor-result end"

_BEGIN = re.compile(r"^>>> couchestor-result((?: [a-z-]+=\S*)*) begin$")
_ATTRIBUTE = re.compile(r"([a-z-]+)=(\S*)")


class ResultBlockError(UserError):
    """A log whose result blocks are cut off or malformed; the message names the line."""


@dataclass(frozen=True, slots=True)
class ResultBlock:
    """One result printed by a Job: the begin line's attributes and the text between the markers."""

    attributes: dict[str, str]
    body: str
    line: int  # 1-based line number of the begin marker, for messages

    @property
    def kind(self) -> str:
        return self.attributes.get("kind", "")


def begin_line(**attributes: str) -> str:
    """The begin marker for a block with these attributes (keyword ``storage_class`` becomes ``storage-class``)."""
    parts = " ".join(f"{key.replace('_', '-')}={value}" for key, value in attributes.items())
    return f"{BEGIN_PREFIX} {parts} begin"


def extract_blocks(text: str, *, source: str) -> list[ResultBlock]:
    """Every result block in ``text`` (a log), in order. Raises :class:`ResultBlockError` for a block that
    has no end marker (a truncated log) or a begin marker nested inside another block."""
    blocks: list[ResultBlock] = []
    current: tuple[dict[str, str], int, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        begin = _BEGIN.match(line)
        if begin is not None:
            if current is not None:
                raise ResultBlockError(
                    f"{source}: line {number}: a result block begins inside the block begun at line {current[1]}"
                )
            current = (dict(_ATTRIBUTE.findall(begin.group(1))), number, [])
        elif line == END_LINE:
            if current is None:
                raise ResultBlockError(f"{source}: line {number}: end marker without a begin marker")
            attributes, start, body = current
            blocks.append(ResultBlock(attributes=attributes, body="\n".join(body), line=start))
            current = None
        elif current is not None:
            current[2].append(line)
        elif line.startswith(BEGIN_PREFIX):
            raise ResultBlockError(f"{source}: line {number}: malformed begin marker {line!r}")
    if current is not None:
        raise ResultBlockError(
            f"{source}: the result block begun at line {current[1]} has no end marker (was the log truncated?)"
        )
    return blocks
