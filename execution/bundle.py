"""Policy bundles: the Rego modules and limits of a folder, built into a content-addressed, signed record.

A bundle is every ``*.rego`` module and ``data.json`` at the top of a folder (never ``tests/``). Its
**revision** is the SHA-256 (hex) of the canonical content: for each file, sorted by name, the UTF-8 text
``name\\n<sha256 hex of the file's bytes>\\n``. It covers exactly the bytes of the modules and of
``data.json``; nothing else (not the manifest, the author, the time or the signature), so the same content
always has the same revision and any edit of any byte of a file gives another.

The manifest follows OPA's bundle manifest (``revision``, ``roots``, ``metadata``) and adds the file list
with each hash (OPA's ``.signatures.json`` style): it is the record. ``regopy`` cannot load OPA bundles,
so the engine is loaded from the files :func:`verify` re-hashed (``PolicyEngine.from_verified``). A stored
bundle lives in ``<lake_root>/policy/bundles/<revision>/``::

    pretrade.rego, data.json      the files, byte for byte
    manifest.json                 {"revision", "roots", "metadata": {author, reason, created, parent},
                                   "files": [{"name", "hash", "algorithm": "SHA-256"}]}
    signature.json                the policy key ring's signature of the canonical manifest bytes
                                  (tag "quantbridge-policy-bundle-v1")
    approvals.json                after a release: {revision, proposer, triggered_by, approvers [{user,
                                  at, task}], dag_run_id, signature} signed
                                  (tag "quantbridge-policy-approvals-v1")

:func:`verify` trusts nothing it did not check: each file against its manifest hash, the revision against
the files, the manifest's signature, and (``require_approvals``) the approvals: signed, for this revision,
two distinct approvers, neither the proposer nor the user who triggered the release. The worker reads the
active revision with :func:`read_active`, verifies it and only then loads it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from quantbridge.errors import InputError, QuantbridgeError
from quantbridge.lake import Lake
from quantbridge.redis_schema import RedisSchema

BUNDLE_TAG = "quantbridge-policy-bundle-v1"
APPROVALS_TAG = "quantbridge-policy-approvals-v1"
#: OPA's manifest roots: the Rego package and the data path the bundle owns.
ROOTS = ("pretrade", "limits")
DATA_FILE = "data.json"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "signature.json"
APPROVALS_FILE = "approvals.json"
#: Approvals a release needs: this many distinct people, none of them the proposer or the trigger.
MIN_APPROVERS = 2
_MODULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.rego$")
_REVISION = re.compile(r"^[0-9a-f]{64}$")


class BundleError(QuantbridgeError):
    """A bundle failed a check. ``what``: the file or field (``data.json``, ``manifest.json revision``,
    ``approvals.json approvers``...); ``problem``: what failed and, where there is one, the fix."""

    def __init__(self, what: str, problem: str) -> None:
        self.what, self.problem = what, problem
        super().__init__(f"policy bundle: {what}: {problem}")


class Signer(Protocol):
    """What a bundle needs of ``quantbridge.signing.KeyRing``."""

    def sign(self, tag: str, message: bytes) -> Any: ...

    def verify(self, tag: str, message: bytes, sig: Any, *, at: float | None = None) -> None: ...


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def revision_of(files: Mapping[str, bytes]) -> str:
    """The revision of ``files`` (name -> bytes): SHA-256 hex of ``name\\n<sha256 hex>\\n`` per file, sorted
    by name."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\n{sha256_hex(files[name])}\n".encode())
    return digest.hexdigest()


def canonical_data(data: Mapping[str, Any]) -> bytes:
    """``data.json`` as a bundle writes it after a change: sorted keys, 2-space indent, final newline.

    ``PolicyEngine(data_overrides=...)`` hashes its effective data the same way, so an engine with
    overrides and :func:`with_limits` of the same changes have the same revision."""
    return (json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def canonical_json(value: Any) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Bundle:
    """The files (name -> bytes) and the manifest of one bundle; ``revision`` is the manifest's, which
    :func:`build` computed from the files (and :func:`verify` recomputes)."""

    files: Mapping[str, bytes]
    manifest: Mapping[str, Any]

    @property
    def revision(self) -> str:
        return str(self.manifest["revision"])

    @property
    def metadata(self) -> Mapping[str, Any]:
        return dict(self.manifest.get("metadata", {}))

    @property
    def modules(self) -> dict[str, str]:
        """The Rego sources by file name, sorted."""
        return {name: self.files[name].decode() for name in sorted(self.files) if name.endswith(".rego")}

    @property
    def data(self) -> dict[str, Any]:
        """``data.json`` parsed."""
        return dict(json.loads(self.files[DATA_FILE]))


@dataclass(frozen=True)
class VerifiedBundle(Bundle):
    """A stored bundle whose files, revision, signature (and approvals, when required) verified."""

    path: Path = field(default=Path())
    approvals: Mapping[str, Any] | None = None


def bundle_files(folder: Path) -> dict[str, bytes]:
    """The files of the bundle in ``folder``: every top-level ``*.rego`` and ``data.json`` (sub-folders such
    as ``tests/`` are not part of it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder", str(folder), "a folder of *.rego modules and data.json")
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.rego")) if p.is_file()}
    if not files:
        raise InputError("folder", str(folder), "at least one *.rego policy module at its top level")
    data = folder / DATA_FILE
    if not data.is_file():
        raise InputError("folder", str(folder), f"a {DATA_FILE} with the limits beside the modules")
    files[DATA_FILE] = data.read_bytes()
    _check_files(files, str(folder))
    return files


def _check_files(files: Mapping[str, bytes], where: str) -> None:
    """Names are plain file names; modules are UTF-8; data.json is a JSON object with a ``limits`` object."""
    for name, raw in files.items():
        if name != DATA_FILE and not _MODULE_NAME.match(name):
            raise BundleError(f"{where} {name!r}", "expected *.rego module names or data.json only")
        try:
            raw.decode()
        except UnicodeDecodeError as exc:
            raise BundleError(
                f"{where} {name}", f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    try:
        data = json.loads(files[DATA_FILE])
    except KeyError:
        raise BundleError(f"{where} {DATA_FILE}", "missing: the limits are part of every bundle") from None
    except ValueError as exc:
        raise BundleError(f"{where} {DATA_FILE}", f"not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("limits"), dict):
        raise BundleError(f"{where} {DATA_FILE}", 'expected a JSON object {"limits": {...}}')


def _manifest(files: Mapping[str, bytes], author: str, reason: str, parent: str | None, created: str) -> dict:
    return {
        "revision": revision_of(files),
        "roots": list(ROOTS),
        "metadata": {"author": author, "reason": reason, "created": created, "parent": parent},
        "files": [{"name": n, "hash": sha256_hex(files[n]), "algorithm": "SHA-256"} for n in sorted(files)],
    }


def _check_text(field_name: str, value: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 1000 or any(ord(c) < 32 and c != "\t" for c in value):
        raise InputError(field_name, value[:80], "one non-empty line of at most 1000 characters")
    return value


def build(
    folder: Path, author: str, reason: str, parent: str | None = None, *, created: str | None = None
) -> Bundle:
    """The bundle of ``folder``'s ``*.rego`` + ``data.json`` with its manifest (``created``: ISO UTC time,
    now by default; ``parent``: the revision it replaces, if any)."""
    return from_files(bundle_files(folder), author, reason, parent, created=created)


def from_files(
    files: Mapping[str, bytes],
    author: str,
    reason: str,
    parent: str | None = None,
    *,
    created: str | None = None,
) -> Bundle:
    """:func:`build` from file contents (name -> bytes)."""
    _check_files(files, "bundle")
    if parent is not None and not _REVISION.match(parent):
        raise InputError("parent", parent, "a revision: 64 lowercase hex digits")
    manifest = _manifest(
        files, _check_text("author", author), _check_text("reason", reason), parent, created or _utc_now()
    )
    return Bundle(dict(sorted(files.items())), manifest)


def _same_kind(old: Any, new: Any) -> bool:
    def kind(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return type(v).__name__
        if isinstance(v, int | float):
            return "number"
        return type(v).__name__

    if kind(old) != kind(new):
        return False
    if isinstance(old, list):
        return all(_same_kind(old[0], v) for v in new) if old and new else True
    return True


def with_limits(bundle: Bundle, changes: Mapping[str, Any], author: str, reason: str) -> Bundle:
    """A new bundle: ``bundle``'s modules and its limits with ``changes`` (limit name -> new value) applied;
    ``parent`` is ``bundle``'s revision and ``data.json`` is written by :func:`canonical_data`.

    Only existing limits may change, each keeping its kind (a number stays a number, a list of tickers a
    list of strings): a typo must not add a limit no rule reads."""
    if not changes:
        raise InputError("changes", dict(changes), "at least one limit to change")
    data = bundle.data
    limits = dict(data["limits"])
    for key, value in changes.items():
        if key not in limits:
            raise InputError(
                f"limits.{key}", value, f"one of the existing limits: {', '.join(sorted(limits))}"
            )
        if not _same_kind(limits[key], value):
            raise InputError(
                f"limits.{key}", value, f"a value of the same kind as the current {json.dumps(limits[key])}"
            )
        if isinstance(value, float) and value != value:  # NaN
            raise InputError(f"limits.{key}", value, "a finite number")
        limits[key] = value
    data["limits"] = limits
    files = dict(bundle.files)
    try:
        files[DATA_FILE] = canonical_data(data)
    except ValueError as exc:
        raise InputError("changes", dict(changes), f"finite JSON values ({exc})") from None
    return from_files(files, author, reason, bundle.revision)


# --- the store ----------------------------------------------------------------------------------------------


def bundles_root(lake: Lake) -> Path:
    return Path(lake.root) / "policy" / "bundles"


def bundle_dir(lake: Lake, revision: str) -> Path:
    if not _REVISION.match(revision or ""):
        raise InputError("revision", revision, "a policy revision: 64 lowercase hex digits")
    return bundles_root(lake) / revision


def stored_revisions(lake: Lake) -> list[str]:
    """Revisions stored in the lake, oldest manifest first."""
    root = bundles_root(lake)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _REVISION.match(p.name) and (p / MANIFEST_FILE).is_file()]
    return [p.name for p in sorted(found, key=lambda p: ((p / MANIFEST_FILE).stat().st_mtime_ns, p.name))]


def resolve(lake: Lake, prefix: str) -> str:
    """The stored revision ``prefix`` names (a full revision, or a unique prefix of 8 or more hex digits)."""
    text = (prefix or "").strip().lower()
    if _REVISION.match(text):
        return text
    if not re.fullmatch(r"[0-9a-f]{8,63}", text):
        raise InputError("revision", prefix, "a revision or a unique prefix of at least 8 hex digits")
    hits = [r for r in stored_revisions(lake) if r.startswith(text)]
    if len(hits) != 1:
        found = (
            "no stored revision" if not hits else f"{len(hits)} revisions ({', '.join(h[:12] for h in hits)})"
        )
        raise InputError("revision", prefix, f"a prefix of exactly one stored revision, found {found}")
    return hits[0]


def _write_atomic(path: Path, raw: bytes) -> None:
    """Write through a temporary file in the same folder and rename: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(bundle: Bundle, lake: Lake, ring: Signer) -> Path:
    """Sign the manifest and write the bundle to ``<lake_root>/policy/bundles/<revision>/`` (written in a
    temporary folder and renamed into place whole). A revision is stored once: when it is already there and
    verifies, its folder is returned unchanged (the first manifest stands)."""
    if revision_of(bundle.files) != bundle.revision:
        raise BundleError("manifest.json revision", "does not match the files: build the bundle again")
    target = bundle_dir(lake, bundle.revision)
    if target.exists():
        verify(lake, bundle.revision, ring, require_approvals=False)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    signature = ring.sign(BUNDLE_TAG, canonical_json(dict(bundle.manifest)))
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{bundle.revision[:12]}."))
    try:
        for name, raw in bundle.files.items():
            (tmp / name).write_bytes(raw)
        (tmp / MANIFEST_FILE).write_text(json.dumps(dict(bundle.manifest), indent=2, sort_keys=True) + "\n")
        (tmp / SIGNATURE_FILE).write_text(json.dumps(signature.to_dict(), indent=2, sort_keys=True) + "\n")
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists():
            raise
        verify(lake, bundle.revision, ring, require_approvals=False)  # another proposer stored it meanwhile
    return target


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(what, f"missing ({path})") from None
    except ValueError as exc:
        raise BundleError(what, f"not JSON ({exc})") from None


def _signature(raw: Any, what: str) -> Any:
    from quantbridge.signing import Signature

    if not isinstance(raw, dict):
        raise BundleError(what, "expected a signature object {key, ml_dsa, ed25519}")
    try:
        return Signature.from_dict(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(what, f"malformed signature ({exc})") from None


def _epoch(value: Any) -> float | None:
    """An ISO time as epoch seconds (None when absent or not a time)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _check_signature(ring: Signer, tag: str, message: bytes, sig: Any, what: str, signed_at: Any) -> None:
    """``signed_at``: the time the signed record itself states (inside the signed bytes). A bundle is a
    long-lived record: a key retired after it was signed still verifies it (as for audit checkpoints), so a
    key rotation does not void the active revision or the approved revisions a rollback may need."""
    from quantbridge.signing import SignatureError

    try:
        ring.verify(tag, message, sig, at=_epoch(signed_at))
    except SignatureError as exc:
        raise BundleError(what, f"signature does not verify ({exc})") from None


def _manifest_files(manifest: Any, where: str) -> dict[str, str]:
    """name -> hash from the manifest, checking its shape."""
    if not isinstance(manifest, dict):
        raise BundleError(where, "expected a JSON object")
    for key in ("revision", "roots", "metadata", "files"):
        if key not in manifest:
            raise BundleError(f"{where} {key}", "missing")
    entries = manifest["files"]
    if not isinstance(entries, list) or not entries:
        raise BundleError(f"{where} files", "expected a non-empty list of {name, hash, algorithm}")
    hashes: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("algorithm") != "SHA-256" or "name" not in entry:
            raise BundleError(
                f"{where} files", f"entry {entry!r}: expected {{name, hash, algorithm: SHA-256}}"
            )
        name = str(entry["name"])
        if name in hashes or (name != DATA_FILE and not _MODULE_NAME.match(name)):
            raise BundleError(f"{where} files", f"entry {name!r} repeated or not a module/data.json name")
        hashes[name] = str(entry.get("hash", ""))
    return hashes


def verify(lake: Lake, revision: str, ring: Signer, *, require_approvals: bool = True) -> VerifiedBundle:
    """Check the stored bundle ``revision`` and return it with the bytes that were checked.

    In order: the manifest's signature (tag ``quantbridge-policy-bundle-v1``), its revision equals the
    folder's name, every listed file's SHA-256, no unlisted module, the revision recomputed from the files;
    then, with ``require_approvals``, ``approvals.json``: its signature, its revision, and the approvers
    (:func:`approval_problems`). Raises :class:`BundleError` naming the file or field that failed.
    """
    folder = bundle_dir(lake, revision)
    if not folder.is_dir():
        raise BundleError(f"revision {revision}", f"not stored in {bundles_root(lake)}: propose it first")
    manifest = _read_json(folder / MANIFEST_FILE, MANIFEST_FILE)
    hashes = _manifest_files(manifest, MANIFEST_FILE)
    sig = _signature(_read_json(folder / SIGNATURE_FILE, SIGNATURE_FILE), SIGNATURE_FILE)
    metadata = manifest["metadata"] if isinstance(manifest["metadata"], dict) else {}
    what = f"{SIGNATURE_FILE} (of {MANIFEST_FILE})"
    _check_signature(ring, BUNDLE_TAG, canonical_json(manifest), sig, what, metadata.get("created"))
    if manifest["revision"] != revision:
        raise BundleError(
            f"{MANIFEST_FILE} revision", f"is {manifest['revision']!r}, the folder is {revision}"
        )
    files: dict[str, bytes] = {}
    for name, expected in sorted(hashes.items()):
        try:
            raw = (folder / name).read_bytes()
        except FileNotFoundError:
            raise BundleError(name, "listed in the manifest but missing from the bundle folder") from None
        got = sha256_hex(raw)
        if got != expected:
            raise BundleError(
                name, f"SHA-256 is {got}, the signed manifest says {expected}: the file was altered"
            )
        files[name] = raw
    extra = sorted(p.name for p in folder.glob("*.rego") if p.name not in hashes)
    if extra:
        raise BundleError(extra[0], "a module in the bundle folder that the signed manifest does not list")
    if revision_of(files) != revision:
        raise BundleError(
            f"{MANIFEST_FILE} revision", f"the files hash to {revision_of(files)}, not {revision}"
        )
    _check_files(files, f"revision {revision[:12]}")
    approvals = None
    if require_approvals:
        approvals = read_approvals(folder, revision, ring, author=str(metadata.get("author", "")))
    return VerifiedBundle(files, manifest, path=folder, approvals=approvals)


# --- approvals ----------------------------------------------------------------------------------------------


def _who(name: Any) -> str:
    return str(name or "").strip().casefold()


def approval_problems(
    proposer: str, triggering_user: str | None, responses: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Why ``responses`` (each ``{user, at?, task?, approved?}``) do not release a bundle, or ``[]``.

    Four eyes: at least two responses, every one an approval by a named user, no user twice, none the
    proposer (bundle author) and none the user who triggered the release. Names compare case-blind."""
    problems: list[str] = []
    if len(responses) < MIN_APPROVERS:
        problems.append(
            f"{len(responses)} approval(s): at least {MIN_APPROVERS} distinct approvers are needed"
        )
    seen: dict[str, str] = {}
    for i, response in enumerate(responses):
        user = _who(response.get("user"))
        task = response.get("task") or f"response {i + 1}"
        if not user:
            problems.append(f"{task}: the approver is not named")
            continue
        if response.get("approved", True) is not True:
            problems.append(f"{task}: {response.get('user')} did not approve")
        if user in seen:
            problems.append(
                f"{task}: {response.get('user')} already approved in {seen[user]}: two distinct approvers"
            )
        seen.setdefault(user, str(task))
        if user == _who(proposer):
            problems.append(f"{task}: {response.get('user')} is the proposer: no self-approval")
        if triggering_user and user == _who(triggering_user):
            problems.append(f"{task}: {response.get('user')} triggered the release: approvers must be others")
    return problems


def approvals_record(
    revision: str,
    proposer: str,
    responses: Sequence[Mapping[str, Any]],
    *,
    triggered_by: str | None = None,
    dag_run_id: str | None = None,
) -> dict[str, Any]:
    """The unsigned content of ``approvals.json``."""
    return {
        "revision": revision,
        "proposer": proposer,
        "triggered_by": triggered_by,
        "dag_run_id": dag_run_id,
        "approvers": [
            {"user": str(r.get("user", "")), "at": str(r.get("at", "")), "task": str(r.get("task", ""))}
            for r in responses
        ],
    }


def write_approvals(lake: Lake, ring: Signer, record: Mapping[str, Any]) -> Path:
    """Sign ``record`` (tag ``quantbridge-policy-approvals-v1``) and write it as ``approvals.json`` of its
    revision's folder (atomically)."""
    folder = bundle_dir(lake, str(record["revision"]))
    if not folder.is_dir():
        raise BundleError(f"revision {record['revision']}", "not stored: nothing to approve")
    body = {**{k: v for k, v in record.items() if k != "signature"}, "signed_at": _utc_now()}
    signed = {**body, "signature": ring.sign(APPROVALS_TAG, canonical_json(body)).to_dict()}
    path = folder / APPROVALS_FILE
    _write_atomic(path, (json.dumps(signed, indent=2, sort_keys=True) + "\n").encode())
    return path


#: Domain tag of the lake's signed copy of the active record (``<lake>/policy/active.json``).
ACTIVE_TAG = "quantbridge-policy-active-v1"


def active_record_path(lake: Lake) -> Path:
    """``<lake_root>/policy/active.json``: the signed copy of the last ``policy_active`` record."""
    return bundles_root(lake).parent / "active.json"


def write_active_record(lake: Lake, ring: Signer, record: Mapping[str, Any]) -> Path:
    """Sign ``record`` (what ``policy_active`` now holds) and write it to :func:`active_record_path`
    (atomically). Redis can be written by any process that can reach it; this copy cannot be forged without
    the policy key, so a worker can tell a deleted record from a system that never activated a bundle."""
    body = {**dict(record), "signed_at": _utc_now()}
    signed = {"record": body, "signature": ring.sign(ACTIVE_TAG, canonical_json(body)).to_dict()}
    path = active_record_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, (json.dumps(signed, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_active_record(lake: Lake, ring: Signer) -> dict[str, Any] | None:
    """The signed copy of the last activation (None when no bundle was ever activated here); BundleError
    when it is malformed or its signature does not verify."""
    path = active_record_path(lake)
    if not path.is_file():
        return None
    raw = _read_json(path, "policy/active.json")
    if not isinstance(raw, dict) or not isinstance(raw.get("record"), dict):
        raise BundleError("policy/active.json", "expected {record, signature}")
    body = raw["record"]
    sig = _signature(raw.get("signature"), "policy/active.json signature")
    _check_signature(ring, ACTIVE_TAG, canonical_json(body), sig, "policy/active.json", body.get("signed_at"))
    if not _REVISION.match(str(body.get("revision", ""))):
        raise BundleError(
            "policy/active.json revision", f"expected 64 hex digits, got {body.get('revision')!r}"
        )
    return dict(body)


def read_approvals(folder: Path, revision: str, ring: Signer, *, author: str) -> dict[str, Any]:
    """``approvals.json`` of ``folder``, checked: signed, for ``revision``, proposer = the bundle's author,
    and :func:`approval_problems` empty."""
    what = APPROVALS_FILE
    if not (folder / what).is_file():
        raise BundleError(
            what, f"missing: revision {revision[:12]} was never approved (release it through the DAG)"
        )
    raw = _read_json(folder / what, what)
    if not isinstance(raw, dict):
        raise BundleError(what, "expected a JSON object")
    body = {k: v for k, v in raw.items() if k != "signature"}
    sig = _signature(raw.get("signature"), what)
    _check_signature(ring, APPROVALS_TAG, canonical_json(body), sig, what, body.get("signed_at"))
    if body.get("revision") != revision:
        raise BundleError(
            f"{what} revision", f"approves {body.get('revision')!r}, not this bundle {revision}"
        )
    if _who(body.get("proposer")) != _who(author):
        raise BundleError(
            f"{what} proposer", f"is {body.get('proposer')!r}, the manifest's author is {author!r}"
        )
    approvers = body.get("approvers")
    if not isinstance(approvers, list) or not all(isinstance(a, dict) for a in approvers):
        raise BundleError(f"{what} approvers", "expected a list of {user, at, task}")
    problems = approval_problems(author, body.get("triggered_by"), approvers)
    if problems:
        raise BundleError(f"{what} approvers", "; ".join(problems))
    return raw


# --- reading what is active (the worker's side) -------------------------------------------------------------


def read_active(client: Any, schema: RedisSchema) -> dict[str, Any] | None:
    """The ``policy_active`` record (JSON {revision, activated_at, by, approvers, dag_run_id, previous, ...})
    or None when no bundle was ever activated. Raises :class:`BundleError` when it is not such JSON."""
    from quantbridge.redis_client import text

    raw = client.get(schema.key("policy_active"))
    return None if raw is None else parse_active(text(raw))


def parse_active(raw: str) -> dict[str, Any]:
    """The ``policy_active`` JSON, checked to be an object with a revision."""
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise BundleError("policy_active", f"not JSON ({exc})") from None
    if not isinstance(record, dict) or not _REVISION.match(str(record.get("revision", ""))):
        raise BundleError(
            "policy_active revision", f"expected 64 hex digits in a JSON object, got {record!r}"
        )
    return record


def worker_record(
    revision: str | None, since: str, refused: str | None = None, reason: str | None = None
) -> str:
    """The JSON a worker writes in ``policy_workers`` (field = its consumer name): the revision it judges
    by, since when, and the last revision it refused with why (``qb policy status`` reads it)."""
    return json.dumps(
        {"revision": revision, "since": since, "refused": refused, "refused_reason": reason}, sort_keys=True
    )


# --- diff ---------------------------------------------------------------------------------------------------


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flat(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)


_ABSENT = object()


def diff(old: Bundle | None, new: Bundle) -> str:
    """A readable diff from ``old`` (None: nothing) to ``new``: a header with both revisions, the limits as
    ``key: old -> new`` lines (list changes also as ``+added``/``-removed``), then the rules as a unified
    diff per module. Empty sections say so."""
    old_rev = old.revision[:12] if old is not None else "(none)"
    lines = [f"policy {old_rev} -> {new.revision[:12]}", "", "limits:"]
    before = _flat(old.data, "") if old is not None else {}
    after = _flat(new.data, "")
    changed = False
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if a == b and (a is _ABSENT or type(a) is type(b)):
            continue
        changed = True
        line = f"  {key}: {_show(a)} -> {_show(b)}"
        if isinstance(a, list) and isinstance(b, list):
            added = [x for x in b if x not in a]
            removed = [x for x in a if x not in b]
            line += " (" + ", ".join([f"+{x}" for x in added] + [f"-{x}" for x in removed]) + ")"
        lines.append(line)
    if not changed:
        lines.append("  (unchanged)")
    lines += ["", "rules:"]
    old_modules = old.modules if old is not None else {}
    rules: list[str] = []
    for name in sorted(set(old_modules) | set(new.modules)):
        a_text, b_text = old_modules.get(name, ""), new.modules.get(name, "")
        if a_text == b_text:
            continue
        rules += difflib.unified_diff(
            a_text.splitlines(),
            b_text.splitlines(),
            fromfile=f"{old_rev}/{name}" if name in old_modules else "/dev/null",
            tofile=f"{new.revision[:12]}/{name}" if name in new.modules else "/dev/null",
            lineterm="",
        )
    lines += rules or ["  (unchanged)"]
    return "\n".join(lines) + "\n"
