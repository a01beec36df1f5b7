#!/usr/bin/env python3
"""Memory of a TCP tracker holding many open, idle connections.

Usage: scripts/idle-connections.py HOST:PORT PID COUNT [SOURCES]

Opens COUNT TCP connections to HOST:PORT (a loopback address only), spread over
SOURCES source addresses 127.0.0.1, 127.0.0.2, ... (default 4; one source address
reaches one port from about 28,000 ephemeral ports), keeps them open and idle, and
prints the resident memory (VmRSS) of process PID before, and once it has settled
after, with the bytes per connection. Then it closes them all. Each connection sends
nothing, so a tracker that closes idle connections sooner than the measurement takes
shows fewer connections: the script counts those still open at the end.

With USED=1 in the environment, every connection first sends a scrape and reads the
answer, so that what is measured is a keep-alive connection gone idle after use.

With WEBSOCKET=1 in the environment, every connection first completes a WebSocket
upgrade (GET / with Upgrade: websocket, answered 101 with the right
Sec-WebSocket-Accept), so that what is measured is an open WebSocket connection that
sends nothing more, as a browser tab that keeps its tracker connection. With USED=1
as well, it then sends one scrape (a masked text frame) and reads the reply frame.

It raises its own open-files limit to fit COUNT (as root it can raise the hard
limit too). Everything stays on 127.0.0.0/8 and ends by itself.
"""

import base64
import hashlib
import json
import os
import resource
import socket
import struct
import sys
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_until(s, marker, i):
    data = b""
    while marker not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f"the tracker closed connection {i} instead of answering")
        data += chunk
    return data


def websocket_upgrade(s, host, i):
    key = base64.b64encode(os.urandom(16))
    s.sendall(
        b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
        b"\r\nOrigin: http://localhost:8080\r\n\r\n"
    )
    answer = read_until(s, b"\r\n\r\n", i)
    head, rest = answer.split(b"\r\n\r\n", 1)
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    if not head.startswith(b"HTTP/1.1 101") or accept not in head:
        raise SystemExit(f"connection {i}: the upgrade was refused: {head[:200]!r}")
    return rest


def websocket_scrape(s, rest, i):
    """Sends a scrape in a masked text frame and reads one frame back."""
    text = json.dumps({"action": "scrape", "info_hash": ["a" * 20]}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[j % 4] for j, b in enumerate(text)))
    data = rest
    while True:
        if len(data) >= 2:
            n, off = data[1] & 127, 2
            if n == 126 and len(data) >= 4:
                n, off = struct.unpack(">H", data[2:4])[0], 4
            if n < 127 and len(data) >= off + n:
                return
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f"the tracker closed connection {i} instead of answering")
        data += chunk


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def main():
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    pid, count = int(sys.argv[2]), int(sys.argv[3])
    sources = int(sys.argv[4]) if len(sys.argv) == 5 else 4
    if not host.startswith("127."):
        raise SystemExit("loopback targets only (127.0.0.0/8)")
    wanted = count + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, soft), max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    before = rss_kb(pid)
    connections = []
    started = time.monotonic()
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.0.{1 + i % sources}", 0))
        s.connect((host, int(port)))
        if os.environ.get("WEBSOCKET") == "1":
            rest = websocket_upgrade(s, sys.argv[1], i)
            if os.environ.get("USED") == "1":
                websocket_scrape(s, rest, i)
        elif os.environ.get("USED") == "1":
            s.sendall(b"GET /scrape?info_hash=aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit(f"the tracker closed connection {i} instead of answering")
                answer += chunk
        connections.append(s)
    opened = time.monotonic() - started
    # Let the tracker accept the backlog and settle.
    last = rss_kb(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = rss_kb(pid)
        if now == last:
            break
        last = now
    after = rss_kb(pid)
    still_open = 0
    for s in connections:
        s.setblocking(False)
        try:
            still_open += s.recv(1) != b""
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    for s in connections:
        s.close()
    per_connection = (after - before) * 1024 / max(count, 1)
    print(
        f"connections {count} (opened in {opened:.1f} s, {still_open} still open at the end); "
        f"RSS before {before / 1024:.1f} MB, with them {after / 1024:.1f} MB; "
        f"{per_connection:.0f} bytes per connection"
    )


if __name__ == "__main__":
    main()
