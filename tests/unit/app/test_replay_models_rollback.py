"""The replay's registry roll-back on resume: versions registered after the checkpoint go, and the champion
and the book decision (models/decision.json) are those of the checkpoint, or absent when it had none."""

from __future__ import annotations

from datetime import date

from app.replay.loop import Replay, ReplayArgs
from quantbridge.lake import Lake


def _replay(tmp_path) -> Replay:
    replay = Replay(ReplayArgs(date(2020, 2, 3), date(2020, 2, 7), tmp_path / "out"))
    replay.lake = Lake(tmp_path / "lake")
    return replay


def test_roll_back_when_resumed_then_champion_and_decision_are_the_checkpoints(tmp_path):
    replay = _replay(tmp_path)
    models = replay.lake.root / "models"
    for version in ("kept", "later"):
        (models / f"version={version}").mkdir(parents=True)
    (models / "champion.json").write_text('{"version": "later"}')
    (models / "decision.json").write_text('{"trade": "hrp"}')
    state = {"models": ["kept"], "champion": '{"version": "kept"}', "decision": '{"trade": "equal_weight"}'}
    replay._roll_back_models(state)
    assert sorted(p.name for p in models.glob("version=*")) == ["version=kept"]
    assert (models / "champion.json").read_text() == '{"version": "kept"}'
    assert (models / "decision.json").read_text() == '{"trade": "equal_weight"}'


def test_roll_back_when_the_checkpoint_had_no_decision_then_the_later_one_is_removed(tmp_path):
    replay = _replay(tmp_path)
    models = replay.lake.root / "models"
    models.mkdir(parents=True)
    (models / "champion.json").write_text('{"version": "later"}')
    (models / "decision.json").write_text('{"trade": "hrp"}')
    replay._roll_back_models({"models": [], "champion": None, "decision": None})
    assert not (models / "champion.json").exists() and not (models / "decision.json").exists()
    (models / "decision.json").write_text('{"trade": "hrp"}')
    replay._roll_back_models({"models": [], "champion": None})  # a checkpoint from before book decisions
    assert not (models / "decision.json").exists()
