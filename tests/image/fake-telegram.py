#!/usr/bin/env python3
"""A fake Telegram Bot API for the image test (tests/image/page.sh).

Speaks what src/gateway/channels/telegram/client.rs uses, as the Bot API documents
it: `POST /bot<TOKEN>/<method>` with a JSON body and a `{"ok": ..., "result":
...}` answer. `getUpdates` long-polls (up to the request's `timeout`, at most
10 s here) for updates with `update_id >= offset`; `sendMessage` records the
bot's message. Any other method answers `{"ok": true, "result": true}`. A
wrong token gets 401 as the real API answers it.

The test drives it through two files in --dir: it appends one JSON object per
line to `inbox.jsonl` ({"from": 111, "chat": 111, "text": "/pair X"}) to have
a user send a message, and reads `sent.jsonl`, one line per sendMessage
({"chat_id": ..., "text": ...}). Listens on loopback only (the QEMU guest
reaches it as 10.0.2.2 through user-mode networking), over TLS with the
test's own CA.
"""

import argparse
import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1024 * 1024


def updates(inbox, offset):
    out = []
    try:
        with open(inbox) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
    except FileNotFoundError:
        return out
    for i, line in enumerate(lines):
        update_id = i + 1
        if update_id < offset:
            continue
        m = json.loads(line)
        chat_type = "private" if m["chat"] == m["from"] else "group"
        out.append({
            "update_id": update_id,
            "message": {
                "message_id": 1000 + update_id,
                "date": int(time.time()),
                "chat": {"id": m["chat"], "type": chat_type},
                "from": {"id": m["from"], "is_bot": False, "first_name": "Test"},
                "text": m["text"],
            },
        })
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--cert-key", required=True)
    args = ap.parse_args()
    if not args.listen.startswith("127."):
        sys.exit("fake-telegram: loopback addresses only")
    inbox = os.path.join(args.dir, "inbox.jsonl")
    sent = os.path.join(args.dir, "sent.jsonl")
    calls = os.path.join(args.dir, "calls.log")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            if length < 0 or length > MAX_BODY:
                return self.reply(413, {"ok": False, "error_code": 413, "description": "Request Entity Too Large"})
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse JSON"})
            prefix = "/bot" + args.token + "/"
            method = self.path[len(prefix):] if self.path.startswith(prefix) else None
            with open(calls, "a") as f:
                f.write((method or "unauthorized") + "\n")
            if method is None:
                return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            if method == "getUpdates":
                offset = int(body.get("offset") or 0)
                deadline = time.time() + min(int(body.get("timeout") or 0), 10)
                while True:
                    found = updates(inbox, offset)
                    if found or time.time() >= deadline:
                        return self.reply(200, {"ok": True, "result": found})
                    time.sleep(0.2)
            if method == "sendMessage":
                with open(sent, "a") as f:
                    f.write(json.dumps({"chat_id": body.get("chat_id"), "text": body.get("text")}) + "\n")
                return self.reply(200, {"ok": True, "result": {
                    "message_id": 1, "date": int(time.time()),
                    "chat": {"id": body.get("chat_id"), "type": "private"},
                    "text": body.get("text")}})
            return self.reply(200, {"ok": True, "result": True})

    server = ThreadingHTTPServer((args.listen, 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.cert_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
