#!/usr/bin/env python3
"""A stand-in for `imsg rpc` on the owner's Mac (tests/gateway_transport_imessage.rs).

Speaks imsg's JSON-RPC 2.0 over stdio, one object a line: answers
`watch.subscribe` with a subscription (or, when the file `refuse` exists in
its directory, with the error imsg gives without Full Disk Access), `send`
with `{"ok": true}`, anything else with "method not found". Its directory is
$IMSG_STUB_DIR (set by the test's sshd_config); there it appends every
request it read to `requests.jsonl` (after answering it), and it writes to
its stdout, verbatim, each line the test writes into the FIFO `feed` (the
notifications, hostile lines included). A feed line `EXIT` ends the process,
as imsg exiting would.
"""

import json
import os
import sys
import threading

DIR = os.environ["IMSG_STUB_DIR"]
LOCK = threading.Lock()


def emit(line):
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def record(line):
    with open(os.path.join(DIR, "requests.jsonl"), "a", encoding="utf-8") as f:
        f.write(line + "\n")


def answer(request):
    rid = request.get("id")
    method = request.get("method")
    if method == "watch.subscribe":
        if os.path.exists(os.path.join(DIR, "refuse")):
            return {"jsonrpc": "2.0", "id": rid,
                    "error": {"code": -32001, "message": "permissionDenied: Full Disk Access is required"}}
        return {"jsonrpc": "2.0", "id": rid, "result": {"subscription": 1}}
    if method == "send":
        return {"jsonrpc": "2.0", "id": rid, "result": {"ok": True, "id": 1000 + int(rid)}}
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "method not found"}}


def feed():
    # Opened read-write: the FIFO never reports end of file between the
    # test's writes, and opening it never waits for a writer.
    fd = os.open(os.path.join(DIR, "feed"), os.O_RDWR)
    with os.fdopen(fd, "r", encoding="utf-8") as fifo:
        for line in fifo:
            line = line.rstrip("\n")
            if line == "EXIT":
                sys.stdout.flush()
                os._exit(3)
            emit(line)


def main():
    if sys.argv[1:] != ["rpc"]:
        sys.stderr.write("usage: imsg rpc\n")
        sys.exit(64)
    threading.Thread(target=feed, daemon=True).start()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except ValueError:
            emit(json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}))
            record(line)
            continue
        emit(json.dumps(answer(request)))
        record(line)


if __name__ == "__main__":
    main()
