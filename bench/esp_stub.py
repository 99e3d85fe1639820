"""A local stand-in for an email provider's HTTP API, for the send benchmark (never for tests of behaviour).

It answers what Anymail's Postmark and Amazon SES (v2) backends post, with each provider's
success response shape, so the whole production path runs (Anymail's payload building,
``requests`` / boto3 with request signing, JSON parsing, the provider message id recorded)
without the network:

* Postmark ``POST /email`` -> ``{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}``
  and ``POST /email/batch`` -> a list of those, one per message;
* Amazon SES v2 ``POST /v2/email/outbound-emails`` (SendEmail) -> ``{"MessageId": ...}``;
* ``GET /count`` -> how many messages it accepted, so a run can check it sent exactly its own.

It answers at once (no provider latency): what the benchmark measures is our side's cost per
message. HTTP/1.1 keep-alive, one thread per connection, as Anymail reuses one connection per batch.

    python -m bench.esp_stub [PORT]   # prints the port it listens on (127.0.0.1), then serves
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_accepted = 0
_lock = threading.Lock()


def _count(messages: int) -> None:
    global _accepted
    with _lock:
        _accepted += messages


def _postmark_result(message: dict) -> dict:
    return {
        "To": message.get("To", ""),
        "SubmittedAt": datetime.now(UTC).isoformat(),
        "MessageID": str(uuid.uuid4()),
        "ErrorCode": 0,
        "Message": "OK",
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/email":
            answer = _postmark_result(json.loads(body))
            _count(1)
        elif self.path == "/email/batch":
            messages = json.loads(body)
            answer = [_postmark_result(message) for message in messages]
            _count(len(messages))
        elif self.path.startswith("/v2/email/outbound-emails"):
            answer = {"MessageId": f"{uuid.uuid4().hex}-000000"}
            _count(1)
        else:
            self._answer(404, {"Message": f"no such endpoint: {self.path}"})
            return
        self._answer(200, answer)

    def do_GET(self) -> None:
        if self.path == "/count":
            self._answer(200, {"accepted": _accepted})
        else:
            self._answer(404, {"Message": f"no such endpoint: {self.path}"})

    def _answer(self, status: int, answer) -> None:
        data = json.dumps(answer).encode()
        # Status line, headers and body in one write: no Nagle / delayed-ACK stall between them.
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + data)

    def log_message(self, *_args) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
