"""Every ``couchestor`` command the README and docs/ show is one the command line accepts as written.

Commands come from shell code blocks (continuation lines joined, comments dropped) and from inline code spans;
each is parsed by the real argument parser (``couchestor.cli.build_parser``), so a renamed flag, a dropped
subcommand or a value outside a flag's choices fails here. Spans with placeholders (``<name>``, ``...``) are
left out. What a command then does is tested where it can run (tests/kubectl/test_kind_guide.py runs
docs/kind.md as written; tests/demo the demo).
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from couchestor.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands(text: str) -> tuple[list[str], list[str]]:
    """(whole commands from shell blocks, command fragments from inline code spans)."""
    blocks = []
    for block in re.findall(r"^```(?:sh|bash|console|shell)\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("couchestor "):
                blocks.append(line)
    spans = re.findall(r"`(couchestor [^`]+)`", text)
    keep = [c for c in blocks if not _placeholder(c)], [c for c in spans if not _placeholder(c)]
    return keep


def _placeholder(command: str) -> bool:
    return bool(re.search(r"<[^>]*>|\.\.\.|…|\[", command))


def _words(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    for i, word in enumerate(words):  # pipes and redirections belong to the shell, not to couchestor
        if word in ("|", ">", ">>", "&&", "2>&1", "&"):
            return words[:i]
    return words


def cases(which: int):
    for path in DOCS:
        for command in shown_commands(path.read_text())[which]:
            yield pytest.param(command, id=f"{path.name}: {command[:60]}")


BLOCKS, SPANS = list(cases(0)), list(cases(1))


def test_the_docs_show_commands():
    assert len(BLOCKS) >= 10, [c.values[0] for c in BLOCKS]
    assert len(SPANS) >= 15, [c.values[0] for c in SPANS]


@pytest.mark.parametrize("command", BLOCKS)
def test_command_is_accepted_as_written(command, capsys):
    try:
        build_parser().parse_args(_words(command)[1:])
    except SystemExit as exc:
        if exc.code != 0:  # --help exits 0
            pytest.fail(f"not accepted: {command}\n{capsys.readouterr().err}")


@pytest.mark.parametrize("command", SPANS)
def test_command_named_in_prose_exists_with_its_flags(command):
    """A span may name a command without its required arguments (``couchestor volumes report``): its
    subcommands must exist and every ``--flag`` it shows must be one of theirs."""
    parser: argparse.ArgumentParser = build_parser()
    for word in _words(command)[1:]:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            known = {s for action in parser._actions for s in action.option_strings}
            assert flag in known, f"{command}: {flag} is not a flag of {parser.prog}"
            continue
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            continue  # a positional argument or a flag's value
        assert word in sub.choices, f"{command}: {parser.prog} has no subcommand {word}"
        parser = sub.choices[word]
