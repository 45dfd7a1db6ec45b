from __future__ import annotations

import pytest

from quantbridge.redis_schema import KEYS, RedisSchema, schema_markdown
from tests.conftest import ROOT


def test_schema_when_listed_then_names_and_full_keys_are_unique():
    assert len({k.name for k in KEYS}) == len(KEYS)
    assert len({k.suffix for k in KEYS}) == len(KEYS)


def test_key_when_prefix_given_then_every_key_lives_under_it():
    schema = RedisSchema("desk1")
    assert schema.key("positions") == "desk1:positions"
    assert schema.heartbeat("var_sensor") == "desk1:heartbeat:var_sensor"
    assert schema.ingest_last == "desk1:ingest:last"


def test_key_when_unknown_name_then_error_lists_known_keys():
    with pytest.raises(KeyError, match="positions"):
        RedisSchema().key("posittions")


def test_prefix_when_contains_colon_then_rejected():
    with pytest.raises(ValueError, match="redis_prefix"):
        RedisSchema("a:b")


def test_operating_page_when_read_then_holds_the_generated_schema_table():
    page = (ROOT / "docs" / "operating.md").read_text()
    assert schema_markdown("qb") in page, "docs/operating.md's schema table is stale: paste `qb schema`"


def test_key_names_when_sources_scanned_then_only_the_schema_module_spells_them():
    spelled = [f'"qb:{k.suffix.split("{")[0]}' for k in KEYS]
    offenders = []
    # The project's own folders only: walking .venv/, .lake/ or .airflow/ took 25 s of the suite.
    tops = [p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "tests"]
    for path in (path for top in tops for path in top.rglob("*.py")):
        if path.name == "redis_schema.py":
            continue
        text = path.read_text()
        offenders += [f"{path}: {s}" for s in spelled if s in text]
    assert offenders == []
