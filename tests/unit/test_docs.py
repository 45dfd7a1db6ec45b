"""The README and the pages under docs/ stay true to the code: short, every link resolving, the CLI and DAG
tables naming what exists (and all of it), the Redis keys and settings they name being real ones."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

from app.cli.main import build_parser
from quantbridge.redis_schema import KEYS
from quantbridge.settings import Settings
from tests.conftest import ROOT

README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [README, *PAGES]
MAX_README_LINES = 260

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a ``# comment`` in a bash block is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeated headings numbered ``-1``, ``-2`` as GitHub does."""
    seen: Counter[str] = Counter()
    anchors = set()
    for line in _prose_lines(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        anchors.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


def _links(path: Path) -> list[str]:
    """Link and image targets in the prose of ``path`` (not inside code spans or code blocks)."""
    targets = []
    for line in _prose_lines(path.read_text()):
        targets += _LINK.findall(_CODE_SPAN.sub("", line))
    return targets


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells; ``\\|`` is a pipe inside a cell."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _table(path: Path, first_header: str) -> list[list[str]]:
    """The rows of the one table in ``path`` whose first header cell is ``first_header``."""
    lines = _prose_lines(path.read_text())
    found = []
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and re.match(r"^\|\s*:?-+", lines[i + 1]):
            if _cells(line)[0].lower() == first_header.lower():
                rows = []
                for row in lines[i + 2 :]:
                    if not row.startswith("|"):
                        break
                    rows.append(_cells(row))
                found.append(rows)
    assert len(found) == 1, f"{path.name}: expected one table headed {first_header!r}, found {len(found)}"
    return found[0]


def _spans(cell: str) -> list[str]:
    return [m.group(2).strip() for m in _CODE_SPAN.finditer(cell)]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _positional_choices(parser: argparse.ArgumentParser) -> set[str]:
    return {
        str(choice)
        for action in parser._actions
        if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction)
        for choice in action.choices
    }


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _section(path: Path, heading: str) -> str:
    """The text under the ``## heading`` of ``path``, up to the next heading of that level."""
    text = path.read_text()
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"{path.name} has no section '## {heading}'"
    return match.group(1)


def test_readme_when_counted_then_a_ten_minute_read():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"
    )


def test_slug_when_heading_has_code_and_punctuation_then_github_anchor():
    assert _slug("The `qb` CLI") == "the-qb-cli"
    assert _slug("Who may change it, and CSRF") == "who-may-change-it-and-csrf"
    assert _slug("The VAE's sweep") == "the-vaes-sweep"
    assert _slug("The beta sweep (GAN)") == "the-beta-sweep-gan"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_when_followed_then_files_and_headings_exist(path):
    broken = []
    for target in _links(path):
        if _SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert broken == [], f"{path.name}: broken links"


def test_links_when_scanned_then_relative_links_were_found():
    # Guards the scanner itself: a regex that matched nothing would pass the link test above vacuously.
    assert "docs/operating.md#redis-state-schema" in _links(README)
    assert "../README.md" in _links(ROOT / "docs" / "risk.md")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_docs_page_when_opened_then_summary_first_and_a_link_back_to_the_readme(path):
    intro = path.read_text().split("\n## ", 1)[0]
    assert intro.startswith("# "), f"{path.name} starts with its title"
    assert "](../README.md)" in intro, f"{path.name}: the opening paragraph links back to the README"


def test_readme_when_read_then_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _links(README)}
    assert [p.name for p in PAGES if p.resolve() not in linked] == []


def test_cli_table_when_compared_with_the_parser_then_same_commands_options_and_actions():
    parser = build_parser()
    commands = _subcommands(parser)
    rows = _table(README, "command")
    named = {shlex.split(_spans(row[0])[0])[1] for row in rows}
    problems = []
    for row in rows:
        for span in (s for cell in row for s in _spans(cell) if s.startswith("qb ")):
            tokens = shlex.split(span)
            name = tokens[1]
            if name not in commands:
                problems.append(f"`{span}`: no command {name!r}")
                continue
            sub, rest = commands[name], tokens[2:]
            if rest and not rest[0].startswith("-"):
                words = rest[0].split("|")
                nested = _subcommands(sub)
                allowed = set(nested) or _positional_choices(sub)
                problems += [f"`{span}`: {name} has no {w!r}" for w in words if allowed and w not in allowed]
                if nested and words[0] in nested:
                    sub = nested[words[0]]
            options = _options(sub)
            problems += [
                f"`{span}`: no option {t.split('=')[0]}"
                for t in rest
                if t.startswith("--") and t.split("=")[0] not in options
            ]
    assert problems == []
    assert named == set(commands), (
        f"missing from the table: {set(commands) - named}; extra: {named - set(commands)}"
    )


def test_dag_table_when_compared_with_dags_folder_then_one_row_per_dag_file():
    files = {p.stem for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_")}
    listed = [_spans(row[0])[0] for row in _table(README, "DAG")]
    assert len(listed) == len(set(listed)), f"a DAG is listed twice: {listed}"
    assert set(listed) == files
    for dag_id in files:
        assert f'dag_id="{dag_id}"' in (ROOT / "dags" / f"{dag_id}.py").read_text(), f"{dag_id}.py's dag_id"


def test_redis_keys_when_named_in_the_docs_then_keys_of_the_schema():
    patterns = [re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[a-z_]+", re.escape(f"qb:{k.suffix}"))) for k in KEYS]
    unknown = {
        f"{path.name}: {key}"
        for path in MARKDOWN
        for key in re.findall(r"qb:[a-z_{}]+(?::[a-z_{}]+)*", path.read_text())
        if not any(p.fullmatch(key) for p in patterns) and key not in {f"qb:{k.suffix}" for k in KEYS}
    }
    assert unknown == set()


def test_settings_table_when_compared_with_settings_then_every_setting_documented():
    model_fields = getattr(Settings, "model_fields", None)
    names = list(model_fields) if model_fields else [f.name for f in dataclasses.fields(Settings)]
    table = _section(ROOT / "docs" / "operating.md", "Settings")
    assert [n for n in names if f"QB_{n.upper()}" not in table] == []
