"""A webhook receiver that checks deliveries with the Python Standard Webhooks library.

It exists to prove that what touchline signs verifies with an off-the-shelf implementation in
another language. Run it with the environment scripts/webhook-receiver.sh sets up:

    receiver.py PORT [SECRET ...]

PORT 0 picks a free port. Secrets (whsec_...) come from the arguments and from
WEBHOOK_RECEIVER_SECRETS (space-separated); a delivery is verified when any of them verifies
it, as a receiver does while its secret is being rotated. The first line on stdout is
`listening <port>`; after that, one JSON line per delivery:
{"webhook_id": ..., "verified": ..., "status": ..., "body": ..., "error": ...}.

A verified delivery is answered with WEBHOOK_RECEIVER_STATUS (default 204), an unverified one
with 401. A request to /fail-next/<n> makes the next n deliveries answer 500 (for retry
tests); it is answered 200 and prints nothing.
"""

import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

FAIL_NEXT = re.compile(r"^/fail-next/(\d+)$")


class Receiver(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.handle_request()

    def do_POST(self) -> None:
        self.handle_request()

    def handle_request(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        control = FAIL_NEXT.match(self.path)
        if control:
            self.server.failures_due = int(control.group(1))
            self.answer(200)
            return

        verified, error = self.verify(body)
        if not verified:
            status = 401
        elif self.server.failures_due > 0:
            self.server.failures_due -= 1
            status = 500
        else:
            status = self.server.status
        self.answer(status)
        line = {
            "webhook_id": self.headers.get("webhook-id"),
            "verified": verified,
            "status": status,
            "body": body.decode("utf-8", errors="replace"),
            "error": error,
        }
        print(json.dumps(line), flush=True)

    def verify(self, body: bytes) -> tuple[bool, str | None]:
        headers = dict(self.headers.items())
        error = "no secrets configured"
        for secret in self.server.secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                return True, None
            except WebhookVerificationError as failure:
                error = str(failure)
        return False, error

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        # stdout is the JSON protocol; the default access log would only add noise on stderr.
        pass


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: receiver.py PORT [SECRET ...]")
    secrets = sys.argv[2:] + os.environ.get("WEBHOOK_RECEIVER_SECRETS", "").split()
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    server.secrets = secrets
    server.status = int(os.environ.get("WEBHOOK_RECEIVER_STATUS", "204"))
    server.failures_due = 0
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
