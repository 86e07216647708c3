#!/usr/bin/env python3
"""A fake OpenAI-compatible chat completions server for the boot tests.

Used by tests/systemd/in-container.sh (plain http on loopback) and by
tests/image/update.sh (https with its own CA, reached from the QEMU guest
through user-mode networking). It speaks `POST /v1/chat/completions` as
src/agent/providers/openai.rs reads it (a whole JSON answer, no streaming):

  - a conversation without a tool result yet: one `run_command` tool call
    with the command given by --command;
  - a request without tools (the admin page's "test connection"): "OK";
  - a conversation whose last message is a tool result: a final text,
    "The command printed: " followed by that result, so the test can see
    the sandbox's real output reach the user.

Every request is logged as one JSON line (path, whether the bearer token
matched --key, the roles of its messages) to --log. The port it listens on
is written to --port-file once it serves. Loopback only.
"""

import argparse
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 4 * 1024 * 1024

def completion(message, finish):
    return {
        "id": "fake",
        "object": "chat.completion",
        "model": "fake-local",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }

def answer(body, command):
    if not body.get("tools"):
        # The owner's "test connection": a request without tools.
        return completion({"role": "assistant", "content": "OK"}, "stop")
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        result = last.get("content")
        if not isinstance(result, str):
            result = json.dumps(result)
        text = "The command printed: " + result[:2000]
        return completion({"role": "assistant", "content": text}, "stop")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "run_command", "arguments": json.dumps({"command": command})},
    }
    return completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--key", required=True, help="the API key the client must send")
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert", help="PEM certificate chain (https)")
    ap.add_argument("--cert-key", help="PEM private key (https)")
    args = ap.parse_args()
    if not args.listen.startswith("127."):
        sys.exit("fake-llm: loopback addresses only")

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
            if length <= 0 or length > MAX_BODY:
                return self.reply(413, {"error": {"type": "bad_length"}})
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                return self.reply(400, {"error": {"type": "bad_json"}})
            authorized = self.headers.get("authorization") == "Bearer " + args.key
            roles = [m.get("role") for m in body.get("messages") or []]
            with open(args.log, "a") as f:
                f.write(json.dumps({"path": self.path, "authorized": authorized, "roles": roles}) + "\n")
            if self.path != "/v1/chat/completions":
                return self.reply(404, {"error": {"type": "not_found"}})
            if not authorized:
                return self.reply(401, {"error": {"type": "invalid_api_key"}})
            self.reply(200, answer(body, args.command))

    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.cert_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))

    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()

if __name__ == "__main__":
    main()
