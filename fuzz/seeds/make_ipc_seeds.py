#!/usr/bin/env python3
"""Writes the ipc_frame seed corpus: real messages of each channel in the
encoding ciborium gives serde types (a struct is a map of its field names, a
unit variant its name, other variants a one-entry map), length-prefixed.
The first byte of a seed picks the message type as in fuzz_targets/ipc_frame.rs."""
import os, struct, sys

def head(major, n):
    if n < 24: return bytes([major << 5 | n])
    if n < 256: return bytes([major << 5 | 24, n])
    if n < 65536: return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n < 2**32: return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)

def cbor(v):
    if v is None: return b"\xf6"
    if v is True: return b"\xf5"
    if v is False: return b"\xf4"
    if isinstance(v, int): return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, str):
        b = v.encode(); return head(3, len(b)) + b
    if isinstance(v, bytes): return head(2, len(v)) + v
    if isinstance(v, list): return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict): return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)

def frame(body): return {"id": 7, "body": body}

SEEDS = {
    0: [{"protocol": 13, "role": "ctl"}, {"protocol": 13, "role": "gateway"}],
    1: [{"Accepted": {"server": "supervisor"}}, {"Refused": {"reason": "protocol 12 spoken, 13 expected"}}],
    2: [frame("Ping"), frame("Reload"), frame({"Admin": "Info"}),
        frame({"Audit": {"Tail": {"kind": "pairing.", "since": None, "after_seq": 3, "limit": 50}}}),
        frame({"Audit": "Verify"})],
    4: [frame("Info"), frame("SetupToken"), frame("RotateCert")],
    6: [frame({"Tail": {"kind": None, "since": "2025-01-31T12:34:56.789Z", "after_seq": None, "limit": 10}}),
        frame("Verify")],
    10: [frame({"TasksList": {"limit": 20}}), frame({"TaskCancel": {"id": "t-1", "force": True}}),
         frame("ApprovalsList"), frame({"ApprovalDecide": {"id": "a-1", "approve": False}})],
    12: [frame({"PairNew": {"channel": "telegram", "ttl_secs": 600}}),
         frame({"UserRevoke": {"channel": "slack", "sender": "U123"}}),
         frame({"PairList": {"channel": None}})],
    14: [frame("Show"),
         frame({"Change": {"changes": [{"key": "agent.model", "value": "claude"}], "expected_version": "0011223344556677"}}),
         frame({"StoreCa": {"key": "agent.ca_file", "pem": "-----BEGIN CERTIFICATE-----\n", "expected_version": None}})],
    18: [frame("Status"), frame("Reload"), frame("SecretList"), frame({"SecretDelete": {"name": "telegram.bot_token"}}),
         frame({"SecretSet": {"name": "x", "value": b"secret"}}), frame({"Chat": {"text": "hello"}}),
         frame({"Settings": "Show"}), frame({"Access": {"PairCancel": {"id": 4}}}),
         frame({"AuditTail": {"kind": None, "since": None, "after_seq": None, "limit": 5}})],
    19: [frame("Done"), frame({"SecretStored": {"name": "x", "version": 2}}),
         frame({"Replies": ["hi", "there"]}), frame({"Rotated": {"secrets": 3}})],
}

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for kind, values in SEEDS.items():
        for i, v in enumerate(values):
            body = cbor(v)
            with open(os.path.join(out, f"t{kind:02}-{i}"), "wb") as f:
                f.write(bytes([kind]) + struct.pack(">I", len(body)) + body)
            with open(os.path.join(out, f"t{kind:02}-{i}-raw"), "wb") as f:
                f.write(bytes([kind | 0x80]) + body)
