"""The README stays true: its configuration table is the generated one, and every `fraudstream`
command in its shell blocks parses with the real CLI (nothing runs)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fraudstream.cli.config import reference_table
from tests.test_compose import parse_command

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
START, END = "<!-- config:start -->", "<!-- config:end -->"


def shell_commands(markdown: str) -> list[list[str]]:
    """Argument lists of the `fraudstream` commands in ```bash blocks (continuations joined,
    comments, `&`, pipes and redirections dropped).

    >>> shell_commands("```bash\\nfraudstream a --x 1 &   # note\\nls\\n.venv/bin/fraudstream b \\\\\\n  --y > f\\n```")
    [['a', '--x', '1'], ['b', '--y']]
    >>> shell_commands("```bash\\nPYTHONPATH=. fraudstream c --z\\n```")
    [['c', '--z']]
    """
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                if word in {"|", "&", "&&", ";"} or word.startswith(">"):
                    words = words[:i]
                    break
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value before a command
                words = words[1:]
            if words and Path(words[0]).name == "fraudstream":
                commands.append(words[1:])
    return commands


def test_configuration_table_is_the_generated_one() -> None:
    assert README.count(START) == 1 and README.count(END) == 1
    table = README.split(START)[1].split(END)[0].strip()
    assert table == reference_table(), "regenerate: replace the table between the markers by `fraudstream config --markdown`"


COMMANDS = shell_commands(README)


def test_the_readme_has_commands() -> None:
    names = {args[0] for args in COMMANDS if args}
    assert {"demo", "up", "produce", "consume", "alerts", "record", "replay"} <= names


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_every_readme_command_parses(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "work" / "main"  # so that ../shared/data/... stays inside tmp_path
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    for arg in args:  # the files a command reads must exist for click to accept them
        if re.search(r"\.(csv|jsonl|gz|fsmodel)$", arg) and not arg.startswith("-"):
            (cwd / arg).parent.mkdir(parents=True, exist_ok=True)
            (cwd / arg).touch()
    parse_command(args)
