#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets other than ipc_frame (see
make_ipc_seeds.py) from the tests' own examples: tests/data/guard,
tests/data/gateway, config/, and bundles signed with the update target's key.
Run from the repository root: python3 fuzz/seeds/make_seeds.py"""
import glob, hashlib, hmac, json, os, struct, sys

sys.path.insert(0, os.path.dirname(__file__))
from make_ipc_seeds import cbor  # noqa: E402

C = "fuzz/corpus"

def put(target, name, data):
    d = os.path.join(C, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def lines(path):
    for l in open(path, encoding="utf-8"):
        l = l.rstrip("\n")
        if l.strip() and not l.lstrip().startswith("#"):
            yield l.replace("<NL>", "\n")

# --- guard: the corpora's commands (benign ones are complete prefixes).
for src in ["benign", "evasions"]:
    for i, l in enumerate(lines(f"tests/data/guard/{src}.txt")):
        put("guard_bytes", f"{src}-{i:03}", bytes([i % 256]) + l.lstrip("!").encode())
# guard_grammar: token picks (see TOKENS there); 0xff cuts prefix from suffix.
for i, toks in enumerate([[0, 4], [1, 12, 60, 2], [45, 60, 0], [23, 64, 1, 0xff, 0], [26, 0, 4, 67, 1],
                          [75, 1, 76], [28, 29, 66, 0, 0xff, 1, 12], [47], [50, 64, 0]]):
    put("guard_grammar", f"seed-{i}", bytes([i * 37 % 256] + toks))

# --- update bundles. The key is the update target's: SigningKey::from_bytes([7; 32]).
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
key = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
key_id = hashlib.sha256(pub).digest()[:8]

def manifest(image, chunk, boot, version=2, revoked=()):
    return cbor({
        "format_version": 1, "product": "cowork-os-appliance", "hardware": ["x86_64-uefi"],
        "version": version, "version_label": str(version),
        "image": {"size": len(image), "sha256": hashlib.sha256(image).digest(), "chunk_size": chunk,
                  "chunk_sha256": [hashlib.sha256(image[i:i + chunk]).digest()
                                   for i in range(0, len(image), chunk)] if chunk else []},
        "boot_files": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).digest()} for n, b in boot],
        "revoked_keys": list(revoked),
    })

def bundle(m, payload):
    header = b"CWUPDATE" + struct.pack(">HHI", 1, 0, len(m)) + key_id + struct.pack(">Q", len(payload))
    sig = key.sign(b"CoWork-OS update manifest v1\0" + header + m)
    return header + m + sig + payload

image = bytes(i * 31 % 251 for i in range(3000))
boot = [("vmlinuz", b"kernel"), ("initrd.img", b"initrd")]
for i, (chunk, rev) in enumerate([(65536, ()), (0, ()), (65536, ("00112233aabbccdd",))]):
    m = manifest(image, chunk, boot, revoked=rev)
    payload = image + b"kernel" + b"initrd"
    put("update_bundle", f"whole-{i}", b"\x00" + bundle(m, payload))
    put("update_bundle", f"signed-manifest-{i}", b"\x01" + struct.pack(">H", len(m)) + m + payload)
put("update_bundle", "signed-manifest-old-version", b"\x01" + (lambda m: struct.pack(">H", len(m)) + m)(
    manifest(image, 0, boot, version=1)) + image + b"kernelinitrd")
put("update_bundle", "edit-none", b"\x02")
put("update_bundle", "edit-header", b"\x02" + bytes([0, 0, 20, 1, 0]))
put("update_bundle", "edit-payload-end", b"\x02" + bytes([1, 17, 0x70, 0x80, 0]))
put("update_bundle", "edit-truncate", b"\x02\x05")
put("update_bundle", "edit-append", b"\x02\x90")

# --- config: the shipped files, with owner settings and edits (NUL-separated).
main = open("config/coworkd.toml").read()
dev = open("config/dev.toml").read()
owner = '[agent]\nmodel = "claude-sonnet"\n\n[channels.telegram]\ndm = "pairing"\n'
put("config_toml", "shipped", b"\x00" + main.encode())
put("config_toml", "dev", b"\x00" + dev.encode())
put("config_toml", "shipped-owner-edits", b"\x00" + "\0".join(
    [main, owner, "agent.model", '"claude-opus"', "limits.max_iterations", "20",
     "channels.telegram.dm", "-", "guard.trusted", '["ls", "git status"]']).encode())
put("config_toml", "dev-dropin-owner", b"\x01" + "\0".join(
    [dev, "[limits]\nmax_iterations = 10\n", owner, "sandbox.require_full_isolation", "false"]).encode())
put("config_toml", "production-owner-refused", b"\x00" + "\0".join(
    [main, 'profile = "development"\n[keystore]\nbackend = "file"\n']).encode())

# --- channels: the tests' payloads.
gw = "tests/data/gateway"
def j(name):
    return open(os.path.join(gw, name), "rb").read()
NOW = 1_700_000_000
for name in sorted(os.listdir(gw)):
    body = j(name)
    if name.startswith("telegram"):
        put("channel_telegram", name, b"\x01\n" + body)
        put("channel_telegram", "wrong-secret-" + name, b"\x00not-the-secret\n" + body)
    if name.startswith("slack"):
        put("channel_slack", name, b"\x01\n\n" + body)
        ts = str(NOW - 12).encode()
        sig = b"v0=" + hmac.new(b"8f742231b10e8888abcd99yyyzzz85a5", b"v0:" + ts + b":" + body,
                                hashlib.sha256).hexdigest().encode()
        put("channel_slack", "own-sig-" + name, b"\x0c" + ts + b"\n" + sig + b"\n" + body)
        env = {"type": "events_api", "envelope_id": "e-1", "payload": json.loads(body)}
        put("channel_slack_socket", name, json.dumps(env))
    if name.startswith("discord"):
        put("channel_discord", name, b"\x01\n\n" + body)
        put("channel_discord", "edited-" + name, b"\x03\n\n" + body)
put("channel_slack", "url-verification", b"\x01\n\n" + json.dumps(
    {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}).encode())
put("channel_telegram", "private", b"\x01\n" + json.dumps({"update_id": 1, "message": {
    "message_id": 5, "date": NOW, "chat": {"id": 42, "type": "private"},
    "from": {"id": 42, "is_bot": False, "first_name": "Ann"}, "text": "hello"}}).encode())
for i, env in enumerate([{"type": "hello", "num_connections": 1},
                         {"type": "disconnect", "reason": "refresh_requested"},
                         {"type": "slash_commands", "envelope_id": "e-2", "payload": {}}]):
    put("channel_slack_socket", f"envelope-{i}", json.dumps(env))
msg = {"id": "1200", "channel_id": "1300", "guild_id": "1400", "type": 0, "content": "<@1100000000000000001> hi",
       "author": {"id": "1500", "username": "ann", "global_name": "Ann"},
       "mentions": [{"id": "1100000000000000001", "username": "cowork", "bot": True}],
       "attachments": [{"filename": "a.txt", "content_type": "text/plain", "size": 3}]}
for i, f in enumerate([{"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None},
                       {"op": 0, "s": 1, "t": "READY", "d": {"session_id": "s", "resume_gateway_url": "wss://x",
                                                             "user": {"id": "1100000000000000001", "bot": True}}},
                       {"op": 0, "s": 2, "t": "MESSAGE_CREATE", "d": msg},
                       {"op": 0, "s": 3, "t": "MESSAGE_CREATE", "d": dict(msg, guild_id=None)},
                       {"op": 11}, {"op": 9, "d": True}, {"op": 7, "d": None}]):
    put("channel_discord_gateway", f"frame-{i}", json.dumps(f))

# --- admin: the page's forms and the audit query.
for i, body in enumerate([
        "csrf=" + "a" * 64 + "&token=abcdef0123456789&password=correct+horse+battery&password2=correct+horse+battery",
        "csrf=" + "a" * 64 + "&password=hunter2",
        "csrf=x&channel=telegram&ttl=600", "csrf=x&channel=slack&sender=U123ABC",
        "csrf=x&id=42", "csrf=x&name=telegram.bot_token&value=123%3Aabc",
        "csrf=x&version=0011223344556677&v%3Aagent.model=claude&r%3Aagent.provider=1&other_key=agent.max_tokens&other_value=100",
        "csrf=x&version=1&v%3Achannels.telegram.dm=pairing&v%3Alimits.max_iterations=",
        "csrf=x&v%3Aguard.trusted=%5B%22ls%22%5D", "a=1&a=2"]):
    put("admin_form", f"form-{i}", b"\x00" + body.encode())
for i, q in enumerate(["kind=pairing.code_issued&since=3600", "kind=&since=", "since=604800", "kind=A&since=1"]):
    put("admin_form", f"query-{i}", b"\x01" + q.encode())

# --- audit: edits of the db (even first byte) or the anchor (odd).
put("audit_verify", "none", b"\x00")
put("audit_verify", "db-header", b"\x00" + bytes([0, 0, 18, 0x10, 0]))
put("audit_verify", "db-page2", b"\x00" + bytes([0, 0x10, 0x40, 0x01, 0]))
put("audit_verify", "db-truncate", b"\x00\x40")
put("audit_verify", "anchor-byte", b"\x01" + bytes([0, 0, 10, 0x01, 0]))
put("audit_verify", "anchor-truncate", b"\x01\x05")

# E-mail sender authentication: a From line, then header fields (the unit
# tests' shapes in src/gateway/channels/email/auth.rs).
put("channel_email_auth", "gmail-like-pass",
    b"Alice <alice@example.com>\nReceived: from x by mx.owner.example\n"
    b"Authentication-Results: mx.owner.example; dkim=pass header.d=example.com header.s=s1; "
    b"spf=pass smtp.mailfrom=alice@example.com; dmarc=pass (p=reject) header.from=example.com\nSubject: hi\n")
put("channel_email_auth", "forged-below",
    b"ceo@example.com\nAuthentication-Results: mx.owner.example 1; dkim = pass (2048-bit key) "
    b"header . d = evil.example; dmarc=fail reason=\"policy; reject\" header.from=example.com\n"
    b"Authentication-Results: mx.owner.example; dmarc=pass header.from=example.com\n")
put("channel_email_auth", "dkim-quoted-id",
    b"\"Bob (work)\" <bob@sub.example.org>\nAuthentication-Results: spamfilter.example; none\n"
    b"Authentication-Results: \"mx.owner.example\"; auth/1=pass smtp.auth=bob; "
    b"dkim=pass header.i=@sub.example.org header.d=@sub.example.org.\n")
# E-mail messages: a flags byte (bit 0: the subject filter), then the raw
# message (the shapes of tests/gateway_transport_email.rs).
AR = b"Authentication-Results: mx.owner.example; dkim=pass header.d=example.com; dmarc=pass header.from=example.com\r\n"
put("channel_email", "plain-pass",
    b"\x00" + AR + b"From: Alice <Alice@Example.com>\r\nTo: bot@owner.example\r\nSubject: status\r\n"
    b"Message-ID: <m1@example.com>\r\nReferences: <r0@example.com>\r\n\r\nHow is it?\r\n\r\n"
    b"On Monday, Bob wrote:\r\n> old\r\n-- \r\nAlice\r\n")
put("channel_email", "multipart-html-filtered",
    b"\x01" + AR + b"From: alice@example.com\r\nSubject: [CoWork] =?utf-8?q?h=C3=A9llo?=\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>Hi=20<b>there</b></p>\r\n--b--\r\n")
put("channel_email", "forged-below",
    b"\x00Authentication-Results: mx.owner.example; dmarc=fail header.from=example.com\r\n" + AR +
    b"From: ceo@example.com\r\nSubject: wire\r\n\r\nnow\r\n")
put("channel_email", "two-froms",
    b"\x00" + AR + b"From: alice@example.com\r\nFrom: ceo@example.com\r\n\r\nx\r\n")
put("channel_email_auth", "nested-comments",
    b"x@y.z\nAuthentication-Results: mx.owner.example; dkim=pass ((((nested)))) header.d=\"y.z\"\n")
