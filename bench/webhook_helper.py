#!/usr/bin/env python3
"""Helpers for bench/webhook.sh (a benchmark, not a test).

  webhook_helper.py receiver PORT LOG
      A loopback HTTP server that answers every POST 200 and appends one
      line per request to LOG: "<arrival time.time()> <path> <new_digest>
      <source>" (new_digest and source from the trigger's JSON body).

  webhook_helper.py hooks URL TOKEN BODY_FILE N
      N sequential POSTs of BODY_FILE (a Distribution envelope) to URL with
      "Authorization: Bearer TOKEN", over one keep-alive connection. Checks
      each answer is 200 and names the outcome "unchanged". Prints one
      duration in ms per line.

  webhook_helper.py procs N CMD...
      Runs CMD N times, one process after another, and prints each wall
      time in ms (stdout of CMD discarded; a failure stops with its stderr).
"""

import http.client
import json
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def receiver(port, log):
    out = open(log, "a", buffering=1)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            t = time.time()
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            digest, source = "-", "-"
            try:
                v = json.loads(body)
                digest = v.get("new_digest") or "-"
                source = v.get("source") or "-"
            except ValueError:
                pass
            out.write(f"{t:.6f} {self.path} {digest} {source}\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()


def hooks(url, token, body_file, n):
    u = urllib.parse.urlsplit(url)
    body = open(body_file, "rb").read()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/vnd.docker.distribution.events.v1+json",
    }
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(int(n)):
        t0 = time.perf_counter()
        conn.request("POST", u.path, body=body, headers=headers)
        r = conn.getresponse()
        answer = r.read()
        t1 = time.perf_counter()
        if r.status != 200 or b'"unchanged"' not in answer:
            sys.exit(f"hook {i}: {r.status} {answer[:500]!r}")
        if i == 0:
            print(f"first answer: {answer.decode()[:300]}", file=sys.stderr)
        print(f"{(t1 - t0) * 1000:.3f}")


def procs(n, cmd):
    for _ in range(int(n)):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t1 = time.perf_counter()
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
        print(f"{(t1 - t0) * 1000:.3f}")


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "receiver":
        receiver(*args)
    elif what == "hooks":
        hooks(*args)
    elif what == "procs":
        procs(args[0], args[1:])
    else:
        sys.exit(__doc__)
