"""Policy bundles for real: built from folders, signed with a real policy key ring (ML-DSA-65 + Ed25519),
stored in a temporary lake and verified; every tampering is refused naming what failed."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from execution import bundle as B
from execution.policy import POLICY_DIR, PolicyEngine
from quantbridge.errors import InputError
from quantbridge.lake import Lake
from quantbridge.signing import KeyRing

APPROVERS = [
    {"user": "carol", "at": "2026-01-01T00:00:00+00:00", "task": "approve_compliance"},
    {"user": "dave", "at": "2026-01-01T00:01:00+00:00", "task": "approve_risk"},
]


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path / "keys", "policy")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def stored(lake: Lake, ring: KeyRing) -> B.Bundle:
    bundle = B.build(POLICY_DIR, "alice", "first release")
    B.store(bundle, lake, ring)
    return bundle


def approve(lake: Lake, ring: KeyRing, revision: str, responses=APPROVERS, proposer="alice", **kw) -> None:
    B.write_approvals(lake, ring, B.approvals_record(revision, proposer, responses, **kw))


def copy_policies(tmp_path: Path, name: str = "work") -> Path:
    folder = tmp_path / name
    shutil.copytree(POLICY_DIR, folder)
    return folder


def test_revision_when_computed_then_it_is_the_sha256_of_name_and_file_hash_lines():
    files = {"b.rego": b"package b\n", "a.rego": b"package a\n", "data.json": b"{}"}
    lines = "".join(f"{n}\n{hashlib.sha256(files[n]).hexdigest()}\n" for n in sorted(files))
    assert B.revision_of(files) == hashlib.sha256(lines.encode()).hexdigest()
    assert B.revision_of({**files, "a.rego": b"package a \n"}) != B.revision_of(files)


def test_build_when_policies_folder_then_tests_excluded_and_revision_equals_the_engines(tmp_path):
    bundle = B.build(POLICY_DIR, "alice", "first")
    assert sorted(bundle.files) == ["data.json", "pretrade.rego"]  # not tests/
    assert bundle.revision == PolicyEngine().revision == PolicyEngine(engine="regopy").revision
    assert bundle.manifest["roots"] == ["pretrade", "limits"]
    assert bundle.metadata["author"] == "alice" and bundle.metadata["parent"] is None
    assert [f["name"] for f in bundle.manifest["files"]] == ["data.json", "pretrade.rego"]
    assert all(f["algorithm"] == "SHA-256" and len(f["hash"]) == 64 for f in bundle.manifest["files"])
    again = B.build(POLICY_DIR, "bob", "same content", created="2020-01-01T00:00:00+00:00")
    assert again.revision == bundle.revision  # the revision covers the files only


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda f: (f / "pretrade.rego").unlink(), "at least one"),
        (lambda f: (f / "data.json").unlink(), "data.json"),
        (lambda f: (f / "data.json").write_text("{not json"), "not JSON"),
        (lambda f: (f / "data.json").write_text('{"other": 1}'), "limits"),
        (lambda f: (f / "x.rego").write_bytes(b"\xff\xfe"), "UTF-8"),
    ],
)
def test_build_when_folder_is_incomplete_then_error_names_the_file(tmp_path, setup, match):
    folder = copy_policies(tmp_path)
    setup(folder)
    with pytest.raises((InputError, B.BundleError), match=match):
        B.build(folder, "alice", "x")


def test_build_when_author_or_reason_empty_then_input_error():
    with pytest.raises(InputError, match="reason"):
        B.build(POLICY_DIR, "alice", "  ")
    with pytest.raises(InputError, match="author"):
        B.build(POLICY_DIR, "", "x")
    with pytest.raises(InputError, match="parent"):
        B.build(POLICY_DIR, "alice", "x", parent="abc")


def test_store_when_verified_then_the_engine_loads_the_checked_bytes(lake, ring, stored):
    folder = B.bundle_dir(lake, stored.revision)
    assert sorted(p.name for p in folder.iterdir()) == [
        "data.json",
        "manifest.json",
        "pretrade.rego",
        "signature.json",
    ]
    verified = B.verify(lake, stored.revision, ring, require_approvals=False)
    assert verified.files == stored.files and verified.approvals is None
    engine = PolicyEngine.from_verified(verified)
    assert engine.revision == stored.revision and engine.folder == folder
    assert engine.data == json.loads((POLICY_DIR / "data.json").read_text())
    assert PolicyEngine.from_verified(verified, engine="regopy").revision == stored.revision


def test_store_when_revision_already_stored_then_the_first_manifest_stands(lake, ring, stored):
    again = B.build(POLICY_DIR, "bob", "again")
    assert B.store(again, lake, ring) == B.bundle_dir(lake, stored.revision)
    kept = B.verify(lake, stored.revision, ring, require_approvals=False)
    assert kept.metadata["author"] == "alice"


@pytest.mark.parametrize("name", ["pretrade.rego", "data.json"])
def test_verify_when_a_file_is_tampered_then_refused_naming_the_file(lake, ring, stored, name):
    path = B.bundle_dir(lake, stored.revision) / name
    path.write_bytes(path.read_bytes().replace(b"250000", b"950000").replace(b"package", b"package "))
    with pytest.raises(B.BundleError, match=f"{name}: SHA-256 is .* the file was altered") as err:
        B.verify(lake, stored.revision, ring, require_approvals=False)
    assert err.value.what == name


def test_verify_when_manifest_altered_then_signature_refused(lake, ring, stored):
    folder = B.bundle_dir(lake, stored.revision)
    # The attacker edits a limit and fixes the hash in the manifest: only the signature can catch it.
    data = (folder / "data.json").read_bytes().replace(b"250000", b"950000")
    (folder / "data.json").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["name"] == "data.json":
            entry["hash"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(B.BundleError, match="signature.json .of manifest.json.: signature does not verify"):
        B.verify(lake, stored.revision, ring, require_approvals=False)


def test_verify_when_signed_by_another_ring_then_refused(lake, ring, stored, tmp_path):
    other = KeyRing(tmp_path / "other-keys", "policy")
    with pytest.raises(B.BundleError, match="signature does not verify"):
        B.verify(lake, stored.revision, other, require_approvals=False)


def test_verify_when_folder_renamed_to_another_revision_then_refused(lake, ring, stored):
    fake = "f" * 64
    shutil.copytree(B.bundle_dir(lake, stored.revision), B.bundle_dir(lake, fake))
    with pytest.raises(B.BundleError, match="manifest.json revision"):
        B.verify(lake, fake, ring, require_approvals=False)


def test_verify_when_a_module_is_added_or_removed_then_refused(lake, ring, stored):
    folder = B.bundle_dir(lake, stored.revision)
    (folder / "extra.rego").write_text("package pretrade\nallow := true\n")
    with pytest.raises(B.BundleError, match="extra.rego: a module .* does not list"):
        B.verify(lake, stored.revision, ring, require_approvals=False)
    (folder / "extra.rego").unlink()
    (folder / "pretrade.rego").unlink()
    with pytest.raises(B.BundleError, match="pretrade.rego: listed in the manifest but missing"):
        B.verify(lake, stored.revision, ring, require_approvals=False)


def test_verify_when_manifest_or_signature_malformed_then_refused_naming_it(lake, ring, stored):
    folder = B.bundle_dir(lake, stored.revision)
    (folder / "signature.json").write_text('{"key": "x"}')
    with pytest.raises(B.BundleError, match="signature.json: malformed signature"):
        B.verify(lake, stored.revision, ring, require_approvals=False)
    (folder / "manifest.json").write_text('{"revision": "x"}')
    with pytest.raises(B.BundleError, match="manifest.json roots: missing"):
        B.verify(lake, stored.revision, ring, require_approvals=False)
    (folder / "manifest.json").unlink()
    with pytest.raises(B.BundleError, match="manifest.json: missing"):
        B.verify(lake, stored.revision, ring, require_approvals=False)
    with pytest.raises(B.BundleError, match="not stored"):
        B.verify(lake, "e" * 64, ring)


def test_verify_when_approved_by_two_others_then_approvals_returned(lake, ring, stored):
    approve(lake, ring, stored.revision, triggered_by="erin", dag_run_id="run-1")
    verified = B.verify(lake, stored.revision, ring)
    assert verified.approvals is not None
    assert [a["user"] for a in verified.approvals["approvers"]] == ["carol", "dave"]
    assert verified.approvals["dag_run_id"] == "run-1" and verified.approvals["triggered_by"] == "erin"


def test_verify_when_never_approved_then_refused(lake, ring, stored):
    with pytest.raises(B.BundleError, match="approvals.json: missing: .* never approved"):
        B.verify(lake, stored.revision, ring)


@pytest.mark.parametrize(
    "responses, kw, problem",
    [
        (
            [{"user": "alice", "task": "approve_compliance"}, APPROVERS[1]],
            {},
            "is the proposer: no self-approval",
        ),
        ([APPROVERS[0], {"user": "Carol", "task": "approve_risk"}], {}, "carol already approved"),
        (APPROVERS, {"triggered_by": "dave"}, "dave triggered the release"),
        (APPROVERS[:1], {}, "1 approval"),
    ],
)
def test_verify_when_approvals_break_four_eyes_then_refused(lake, ring, stored, responses, kw, problem):
    approve(lake, ring, stored.revision, responses, **kw)
    with pytest.raises(B.BundleError, match="approvals.json approvers") as err:
        B.verify(lake, stored.revision, ring)
    assert problem.lower() in str(err.value).lower()


def test_verify_when_approvals_edited_then_signature_refused(lake, ring, stored):
    approve(lake, ring, stored.revision)
    path = B.bundle_dir(lake, stored.revision) / "approvals.json"
    record = json.loads(path.read_text())
    record["approvers"][1]["user"] = "mallory"
    path.write_text(json.dumps(record))
    with pytest.raises(B.BundleError, match="approvals.json: signature does not verify"):
        B.verify(lake, stored.revision, ring)


def test_verify_when_approvals_copied_from_another_revision_then_refused(lake, ring, stored, tmp_path):
    other = B.with_limits(stored, {"max_order_notional": 100_000}, "alice", "tighter")
    B.store(other, lake, ring)
    approve(lake, ring, other.revision)
    shutil.copy(
        B.bundle_dir(lake, other.revision) / "approvals.json",
        B.bundle_dir(lake, stored.revision) / "approvals.json",
    )
    with pytest.raises(B.BundleError, match="approvals.json revision: approves"):
        B.verify(lake, stored.revision, ring)
    approve(lake, ring, stored.revision, proposer="zed")
    with pytest.raises(B.BundleError, match="approvals.json proposer"):
        B.verify(lake, stored.revision, ring)


def test_write_approvals_when_revision_not_stored_then_refused(lake, ring):
    with pytest.raises(B.BundleError, match="nothing to approve"):
        approve(lake, ring, "a" * 64)


def test_with_limits_when_changed_then_parent_set_and_revision_equals_the_engine_with_overrides(stored):
    changes = {"max_order_notional": 100_000, "restricted": ["RRC", "XOM"]}
    new = B.with_limits(stored, changes, "alice", "tighter after VaR zone yellow")
    assert new.metadata["parent"] == stored.revision and new.revision != stored.revision
    assert new.data["limits"] == {**stored.data["limits"], **changes}
    assert new.files["pretrade.rego"] == stored.files["pretrade.rego"]
    assert new.revision == PolicyEngine(data_overrides=changes).revision
    assert PolicyEngine(data_overrides={}).revision == stored.revision  # no override: the file's own bytes


@pytest.mark.parametrize(
    "changes, match",
    [
        ({}, "at least one"),
        ({"max_notional": 1}, "one of the existing limits"),
        ({"max_order_notional": "100"}, "same kind"),
        ({"max_order_notional": True}, "same kind"),
        ({"restricted": "XOM"}, "same kind"),
        ({"restricted": [1]}, "same kind"),
        ({"price_band": float("nan")}, "finite"),
    ],
)
def test_with_limits_when_change_is_not_a_limit_of_its_kind_then_input_error(stored, changes, match):
    with pytest.raises(InputError, match=match):
        B.with_limits(stored, changes, "alice", "x")


def test_diff_when_limits_and_rules_change_then_readable(tmp_path, stored):
    folder = copy_policies(tmp_path)
    rego = (folder / "pretrade.rego").read_text()
    (folder / "pretrade.rego").write_text(
        rego.replace("default allow := false", "default allow := false\n# new")
    )
    data = json.loads((folder / "data.json").read_text())
    data["limits"]["max_order_notional"] = 100000
    data["limits"]["restricted"] = ["XOM"]
    (folder / "data.json").write_text(json.dumps(data))
    new = B.build(folder, "alice", "edit", stored.revision)
    text = B.diff(stored, new)
    assert text.startswith(f"policy {stored.revision[:12]} -> {new.revision[:12]}\n")
    assert "  limits.max_order_notional: 250000 -> 100000\n" in text
    assert '  limits.restricted: ["RRC"] -> ["XOM"] (+XOM, -RRC)\n' in text
    assert f"--- {stored.revision[:12]}/pretrade.rego" in text and "+# new" in text
    assert "limits.price_band" not in text
    assert B.diff(stored, stored).count("(unchanged)") == 2
    first = B.diff(None, stored)
    assert (
        "policy (none) -> " in first
        and "--- /dev/null" in first
        and "limits.price_band: (absent) -> 0.1" in first
    )


def test_resolve_when_prefix_unique_then_full_revision(lake, ring, stored):
    assert B.resolve(lake, stored.revision[:10].upper()) == stored.revision
    assert B.stored_revisions(lake) == [stored.revision]
    with pytest.raises(InputError, match="exactly one stored revision, found no stored revision"):
        B.resolve(lake, "0123456789")
    with pytest.raises(InputError, match="at least 8 hex digits"):
        B.resolve(lake, "abc")
    with pytest.raises(InputError, match="64 lowercase hex"):
        B.bundle_dir(lake, "../etc")


def test_parse_active_when_not_a_record_then_bundle_error():
    assert B.parse_active(json.dumps({"revision": "a" * 64}))["revision"] == "a" * 64
    with pytest.raises(B.BundleError, match="policy_active: not JSON"):
        B.parse_active("{")
    with pytest.raises(B.BundleError, match="policy_active revision"):
        B.parse_active('{"revision": "x"}')
    record = json.loads(B.worker_record("a" * 64, "2026-01-01T00:00:00+00:00", "b" * 64, "BAD_SIGNATURE"))
    assert record == {
        "revision": "a" * 64,
        "since": "2026-01-01T00:00:00+00:00",
        "refused": "b" * 64,
        "refused_reason": "BAD_SIGNATURE",
    }


def test_verify_when_the_key_was_rotated_after_signing_then_the_bundle_and_approvals_still_verify(
    tmp_path, lake
):
    now = [time.time() + 10]  # the ring's clock; approvals.json states the real time of its signing
    ring = KeyRing(tmp_path / "keys", "policy", grace_s=60, clock=lambda: now[0])
    old = B.build(POLICY_DIR, "alice", "signed before the rotation", created="2020-01-01T00:00:00+00:00")
    B.store(old, lake, ring)
    B.write_approvals(lake, ring, B.approvals_record(old.revision, "alice", APPROVERS))
    late = B.with_limits(old, {"price_band": 0.05}, "alice", "claims a time after the rotation")
    late = B.from_files(late.files, "alice", "x", created="2100-01-01T00:00:00+00:00")
    B.store(late, lake, ring)
    ring.rotate()
    now[0] += 3600  # far beyond the grace period
    assert B.verify(lake, old.revision, ring).approvals is not None  # a rotation does not void releases
    with pytest.raises(B.BundleError, match="signature.json .of manifest.json.: .*beyond the grace period"):
        B.verify(lake, late.revision, ring, require_approvals=False)


def test_active_record_when_written_then_read_back_and_when_altered_or_malformed_then_refused(lake, ring):
    revision = "a" * 64
    assert B.read_active_record(lake, ring) is None  # never activated here
    path = B.write_active_record(lake, ring, {"revision": revision, "by": "policy_release"})
    record = B.read_active_record(lake, ring)
    assert record["revision"] == revision and record["by"] == "policy_release" and record["signed_at"]
    saved = path.read_text()
    path.write_text(saved.replace("policy_release", "mallory"))
    with pytest.raises(B.BundleError, match="signature does not verify"):
        B.read_active_record(lake, ring)
    path.write_text('{"record": 1}')
    with pytest.raises(B.BundleError, match="expected \\{record, signature\\}"):
        B.read_active_record(lake, ring)
    B.write_active_record(lake, ring, {"revision": "short"})
    with pytest.raises(B.BundleError, match="revision"):
        B.read_active_record(lake, ring)
