"""A call record nobody can quietly change: the call's stored facts and log, each log entry
hash-chained to the one before, the head signed with the platform's Ed25519 key. Both sides
download it (GET /api/calls/<id>/record); `interkanect verify-record FILE` and
POST /api/records/verify say whether a record is intact and signed by us. Pure, but for the
key file (`signing_key`).

Decisions:
- The chain is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8, a whole-number
  float written as an integer, as JavaScript does) of each entry with the previous entry's hash
  in `prev` (64 zeros before the first). The call's facts (who,
  when, terms, payments) are the chain's first link, so they cannot be edited either.
- The record is made and signed when it is asked for, from what the call store holds, only for
  an ended call: the same stored call always gives the same head; a later money event on the
  call (a late capture's refund) is a new entry and a new head, signed again.
- The key: `record_key_file` (an Ed25519 private key, PEM), made on first use in the data
  directory when the setting is empty. Every gateway of a deployment must use the same file;
  the public key is at /.well-known/interkanect-record-key.
"""
import base64
import datetime
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "interkanect-call-record/1"
GENESIS = "0" * 64
KEY_FILE_NAME = "record-ed25519.pem"


def canonical(value):
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_iso).encode()


def _normal(value):
    """Numbers as any JSON reader writes them back: 600.0 is 600 (a browser re-sending a record
    it parsed must get the same hashes)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normal(item) for item in value]
    return value


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not part of a call record")


def link(entry, prev):
    """`entry` with its place in the chain: {"prev", "hash", ...entry}."""
    body = dict(entry, prev=prev)
    body.pop("hash", None)
    return dict(body, hash=hashlib.sha256(canonical(body)).hexdigest())


def facts(call):
    """What the record says of the call itself (the stored document's metadata, no log)."""
    keep = ("_id", "host_id", "host_name", "caller_id", "caller_name", "state", "end_reason", "created_at",
            "answered_at", "ended_at", "rounds", "payments", "paid_s", "used_s", "quality")
    shown = {name: call.get(name) for name in keep}
    shown["tips"] = [tip for tip in call.get("tips", []) if tip.get("state") == "captured"]
    return json.loads(canonical(shown))   # datetimes as ISO text, as the record carries them


def chain(call):
    """[facts link, log links...]: every link carries the hash of the one before."""
    links, prev = [], GENESIS
    for entry in [{"facts": facts(call)}] + list(call.get("log", [])):
        entry = json.loads(canonical(entry))
        links.append(link(entry, prev))
        prev = links[-1]["hash"]
    return links


def record(call, private_key, key_id):
    links = chain(call)
    head = links[-1]["hash"]
    return {"format": FORMAT, "call_id": call["_id"], "links": links, "head": head, "key_id": key_id,
            "signature": base64.b64encode(private_key.sign(head.encode())).decode()}


def verify(document, public_key):
    """(ok, why): whether `document` is a record whose chain is intact and whose head is signed
    by `public_key`."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return False, f"not an interKanect call record (format {FORMAT})"
    links = document.get("links")
    if not isinstance(links, list) or not links:
        return False, "the record has no entries"
    prev = GENESIS
    for index, entry in enumerate(links):
        if not isinstance(entry, dict) or entry.get("prev") != prev:
            return False, f"entry {index} does not follow the one before it"
        if link(entry, prev)["hash"] != entry.get("hash"):
            return False, f"entry {index} was changed after it was recorded"
        prev = entry["hash"]
    if document.get("head") != prev:
        return False, "the head is not the last entry's hash"
    try:
        public_key.verify(base64.b64decode(str(document.get("signature")), validate=True), prev.encode())
    except (InvalidSignature, ValueError):
        return False, "the signature is not interKanect's for this record"
    return True, "intact and signed by interKanect"


# The key -------------------------------------------------------------------------------------

def key_path(settings):
    return Path(settings.record_key_file) if settings.record_key_file else Path(settings.data_dir) / KEY_FILE_NAME


def signing_key(settings):
    """The platform's private key: read from its file, or made there on first use (0600)."""
    path = key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:   # another process made it first: use theirs
            pass
        else:
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"error: {path} is not an Ed25519 private key (IK_RECORD_KEY_FILE)")
    return key


def public_key_text(private_key):
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id(public_text):
    return hashlib.sha256(public_text.encode()).hexdigest()[:16]


def public_key_from_text(text):
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


class RecordKeys:
    """The platform's key pair as a gateway uses it."""

    def __init__(self, settings):
        self.private = signing_key(settings)
        self.public = self.private.public_key()
        self.public_text = public_key_text(self.private)
        self.key_id = key_id(self.public_text)
