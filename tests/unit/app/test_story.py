"""The demo's story printer and its log-file redirection (app.cli.story), with real file descriptors."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from app.cli.story import Story, log_path
from tests.conftest import ROOT


def _clock(*times: float):
    ticks = iter(times)
    return lambda: next(ticks)


def test_story_when_plain_then_each_step_prints_its_title_then_its_result_and_time():
    stream = io.StringIO()

    with Story(stream, clock=_clock(10.0, 12.34, 20.0, 20.5)) as story:
        story.line("qb demo: header")
        with story.step("[1/2] ingest") as step:
            step.result = "210 partitions"
        with story.step("[2/2] report"):
            pass  # no result set: the step still says it is done

    assert stream.getvalue().splitlines() == [
        "qb demo: header",
        "[1/2] ingest",
        "      210 partitions (2.3 s)",
        "[2/2] report",
        "      done (0.5 s)",
    ]


def test_story_when_step_raises_then_failed_line_names_the_error_and_it_propagates():
    stream = io.StringIO()

    with pytest.raises(RuntimeError, match="Redis down"), Story(stream, clock=_clock(0.0, 1.25)) as story:
        with story.step("[6/7] live") as step:
            step.result = "never printed"
            raise RuntimeError("Redis down")

    assert stream.getvalue().splitlines() == [
        "[6/7] live",
        "      FAILED after 1.2 s: RuntimeError: Redis down",
    ]


def test_story_when_stream_is_none_then_prints_nothing_and_is_not_fancy(capsys):
    story = Story(None, fancy=True)

    with story, story.step("[1/1] quiet") as step:
        step.result = "ok"

    assert story.fancy is False
    assert capsys.readouterr() == ("", "")


def test_story_when_not_a_terminal_then_plain_and_when_fancy_then_same_lines_through_rich():
    plain, fancy = io.StringIO(), io.StringIO()
    assert Story(plain).fancy is False  # a StringIO is no terminal

    with Story(fancy, fancy=True, clock=_clock(0.0, 3.0)) as story:
        story.line("[header] kept literally")  # brackets are text, not rich markup
        with story.step("[1/7] bulk ingest") as step:
            print("a library's noise", file=sys.stderr)  # rich must not route it to the story
            step.result = "210 partitions"

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", fancy.getvalue())
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    assert [line for line in lines if not line.startswith(tuple("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"))] == [
        "[header] kept literally",
        "[1/7] bulk ingest",
        "      210 partitions (3.0 s)",
    ]


def test_log_path_when_time_given_then_demo_file_stamped_in_utc(tmp_path):
    now = datetime(2020, 4, 1, 22, 0, 5, tzinfo=UTC)

    assert log_path(tmp_path / "logs", now) == tmp_path / "logs" / "demo-20200401T220005Z.log"


# A child interpreter with real descriptors 1 and 2 (pytest's capture replaces sys.stdout/sys.stderr here).
CHILD = textwrap.dedent(
    """
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from app.cli.story import output_to

    logging.basicConfig(level=logging.INFO)  # a handler on the original sys.stderr, as Airflow's is
    with output_to(Path(sys.argv[1])) as story:
        print("python stdout")
        print("python stderr", file=sys.stderr)
        os.write(1, b"fd one\\n")
        os.write(2, b"fd two\\n")
        logging.getLogger("airflow.task").info("a library's INFO line")
        warnings.warn("a library's warning", UserWarning)
        code = "import sys; print('jvm out'); print('jvm err', file=sys.stderr)"
        subprocess.run([sys.executable, "-c", code], check=True)  # like the Spark JVM: inherits 1 and 2
        print("the story", file=story)
        if sys.argv[2] == "raise":
            raise SystemExit("the demo failed")
    print("the result")
    """
)


def _child(tmp_path, mode: str) -> tuple[subprocess.CompletedProcess[str], str]:
    log = tmp_path / "logs" / "demo.log"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(log), mode], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    return proc, log.read_text()


def test_output_to_when_libraries_and_child_processes_write_then_all_in_the_log_and_only_the_story_out(
    tmp_path,
):
    proc, log = _child(tmp_path, "ok")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the result\n"  # stdout restored after the block, with nothing else on it
    assert proc.stderr == "the story\n"
    for line in (
        "python stdout",
        "python stderr",
        "fd one",
        "fd two",
        "a library's INFO line",
        "a library's warning",
        "jvm out",
        "jvm err",
    ):
        assert line in log
    assert "the story" not in log and "the result" not in log


def test_output_to_when_block_raises_then_descriptors_restored_and_error_reaches_the_terminal(tmp_path):
    proc, log = _child(tmp_path, "raise")

    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "the story\nthe demo failed\n"
    assert "jvm err" in log and "the demo failed" not in log
