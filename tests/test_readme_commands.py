"""Every command the README and docs/*.md show in a shell block must work as printed.

Each ``python run.py ...`` / ``python -m <module> ...`` line of a ```bash block is split the way a
POSIX shell splits it (``shlex``, then ``$VAR`` expansion), and then:

- the module (or ``run.py``) exists;
- for the Hydra entry points, every override parses with Hydra's own grammar (the one ``run.py``
  applies before anything else) after the entry point's own argument fix-ups;
- every ``group=option`` names a preset that exists (sweeps: every option).

``<name>``-style placeholders are for the reader to fill in: they are replaced by a plain word.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep

from lanas.training.final import quote_arch_override
from tests.helpers import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HYDRA_APPS = {"run.py", "lanas.training.train_supernet", "lanas.training.final"}
PLACEHOLDER = re.compile(r"<[A-Za-z_ ]+>")
SEPARATORS = {"&&", "||", ";", "|", "&"}


def shell_blocks(text: str) -> list[str]:
    """The bodies of the ```bash / ```sh / ```shell blocks, with backslash continuations joined."""
    blocks = re.findall(r"^[ \t]*```(?:bash|sh|shell|console)[ \t]*\n(.*?)^[ \t]*```", text, re.S | re.M)
    return [block.replace("\\\n", " ") for block in blocks]


def split_commands(line: str) -> list[list[str]]:
    """Words of each simple command on ``line`` (split at ``&&``, ``;``, ``|``), comments dropped."""
    lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", line), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(os.path.expandvars(word))  # the shell's parameter expansion ($HOME, ...)
    return [words for words in commands if words]


def entry_point(words: list[str]) -> tuple[str, list[str]] | None:
    """``("run.py" | module name, arguments)`` of a project command, else None."""
    if len(words) >= 2 and words[0] in ("python", "python3"):
        if words[1] == "run.py":
            return "run.py", words[2:]
        if words[1] == "-m" and len(words) >= 3 and words[2].split(".")[0] in ("lanas", "benchmarks", "perf", "experiments"):
            return words[2], words[3:]
    return None


def documented_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in shell_blocks(doc.read_text()):
            for line in block.splitlines():
                for words in split_commands(line):
                    entry = entry_point(words)
                    if entry:
                        found.append((f"{doc.name}: {' '.join(words)}", *entry))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_entry_point():
    entries = {entry for _, entry, _ in COMMANDS}
    assert {"run.py", "lanas.training.train_supernet", "lanas.training.final"} <= entries, entries
    assert len(COMMANDS) > 30


@pytest.fixture(scope="module")
def group_options():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        yield lambda group: set(loader.get_group_options(group))
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(("where", "entry", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_parses(where, entry, args, group_options):
    if entry == "run.py":
        assert (ROOT / "run.py").is_file()
    else:
        assert importlib.util.find_spec(entry) is not None, f"{where}: no module {entry}"
    if entry not in HYDRA_APPS:
        return
    if entry == "lanas.training.final":
        args = quote_arch_override(args)
    overrides = [arg for arg in args if arg not in ("-m", "--multirun")]
    assert all(not arg.startswith("-") for arg in overrides), f"{where}: unknown flag in {overrides}"
    parsed = OverridesParser.create().parse_overrides(overrides)  # raises on what run.py would refuse
    for override in parsed:
        group = override.key_or_group
        options = group_options(group)
        if not options or override.is_delete():
            continue  # a config key, not a group
        value = override.value()
        choices = value.list if isinstance(value, ChoiceSweep) else [value]
        for choice in choices:
            if choice == "PLACEHOLDER":
                continue
            assert str(choice) in options, f"{where}: {group}={choice} is not a preset; options: {sorted(options)}"


def test_the_checker_refuses_what_a_shell_passes_unchanged():
    # A tilde after '=' is not expanded by sh or zsh: Hydra then sees '~' and refuses the override.
    (words,) = split_commands("python run.py benchmark.path=~/.cache/x  # comment")
    with pytest.raises(Exception, match="LexerNoViableAlt"):
        OverridesParser.create().parse_overrides(entry_point(words)[1])
    assert split_commands("a && python run.py seed='range(10)' | cat") == [
        ["a"], ["python", "run.py", "seed=range(10)"], ["cat"]]
