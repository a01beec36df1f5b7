#!/usr/bin/env python3
"""Honest-client latency while one hostile client runs, for the TCP trackers.

Starts a tracker binary (tracker_http or tracker_ws) on 127.0.0.1 with one socket
worker and one request worker, pinned to one CPU, and for each scenario runs one
hostile client (in a process of its own) beside an honest client on the same worker.
The honest client makes sequential announces on one keep-alive connection and records
each one's latency; the table gives p50, p99 and the largest wait, and how many
announces got no answer within the per-request timeout.

Scenarios:
  none           no hostile client (the baseline)
  http-pipeline  (http) pipelines `GET /` without pause and reads the answers
  ws-ping-flood  (ws) streams 125-byte pings and never reads
  ws-pong-stream (ws) streams empty unsolicited pongs

Usage:
  scripts/hostile-latency.py --tracker-bin target/release/tracker_http [--label NAME]
      [--announces N] [--timeout SECS] [--tracker-cpu N] [--client-cpu N]
Several --tracker-bin (with as many --label) compare binaries in one run (for
example the previous commit's build and this one's), in alternation per scenario.

Everything goes to 127.0.0.1; each hostile client stops after the honest client is
done or after 60 s, and the tracker is stopped at the end.
"""

import argparse
import base64
import json
import multiprocessing
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_tracker(binary, protocol, cpu):
    port = free_port()
    metrics_port = free_port()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    section = "http" if protocol == "http" else "ws"
    config.write(
        f"""
log_level = "warn"
[network]
address = "{HOST}:{port}"
[workers]
socket_workers = 1
request_workers = 1
[metrics]
address = "{HOST}:{metrics_port}"
"""
    )
    config.close()
    del section
    cmd = [binary, "-c", config.name]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc, port, config.name
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{binary} exited: {proc.stderr.read().decode(errors='replace')}")
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"{binary} did not listen on {port}")


def stop_tracker(proc, config):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    os.unlink(config)


def ws_upgrade(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            "GET /announce HTTP/1.1\r\nHost: tracker.test\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise OSError("closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise OSError(f"upgrade refused: {head[:40]!r}")
    return s


def client_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def hostile(kind, port, stop):
    """Runs one hostile client until `stop` is set or 60 s pass. It shares the client
    CPU with the honest client, at the lowest priority: it then stands for a client on
    another machine, and the honest client's figures are the tracker's, not this CPU's
    scheduling (at equal priority the honest client waits for the flooder's time slice,
    about 4 ms, whatever the tracker does)."""
    os.nice(19)
    started = time.monotonic()
    try:
        if kind == "http-pipeline":
            s = socket.create_connection((HOST, port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            requests = b"GET / HTTP/1.1\r\nHost: tracker.test\r\n\r\n" * 256
            s.setblocking(False)
            buf = bytearray(1 << 16)
            # A send may take part of the buffer: the rest goes first next time, so
            # that the stream stays whole requests.
            pending = memoryview(requests)
            while not stop.is_set() and time.monotonic() - started < 60:
                try:
                    sent = s.send(pending)
                    pending = pending[sent:] if sent < len(pending) else memoryview(requests)
                except BlockingIOError:
                    pass
                try:
                    while s.recv_into(buf):
                        pass
                except BlockingIOError:
                    pass
        else:
            s = ws_upgrade(port)
            if kind == "ws-ping-flood":
                chunk = b"".join(client_frame(0x9, b"Z" * 125) for _ in range(512))
            else:
                chunk = b"".join(client_frame(0xA, b"") for _ in range(4096))
            s.settimeout(1)
            while not stop.is_set() and time.monotonic() - started < 60:
                try:
                    s.sendall(chunk)
                except socket.timeout:
                    pass
    except OSError as err:
        print(f"hostile client {kind}: {err}", file=sys.stderr)


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def connect_http(port, timeout):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def honest(connect, exchange, announces):
    """Sequential announces: their latencies, and how many got no answer (a lost
    connection is made again; one that cannot be made counts the rest as lost)."""
    latencies, lost = [], 0
    try:
        s = connect()
    except OSError:
        return latencies, announces
    for i in range(announces):
        t0 = time.perf_counter()
        try:
            exchange(s, i)
            latencies.append(time.perf_counter() - t0)
        except OSError:
            lost += 1
            s.close()
            try:
                s = connect()
            except OSError:
                return latencies, lost + announces - i - 1
    s.close()
    return latencies, lost


def honest_http(port, announces, timeout):
    state = {"pending": b""}

    def exchange(s, i):
        peer_id = f"-SH0001-{i:012d}"
        s.sendall(
            (
                f"GET /announce?info_hash={'%01' * 20}&peer_id={peer_id}&port=6881"
                "&uploaded=0&downloaded=0&left=1&compact=1 HTTP/1.1\r\n"
                "Host: tracker.test\r\n\r\n"
            ).encode()
        )
        pending = state["pending"]
        while b"\r\n\r\n" not in pending:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed")
            pending += chunk
        head, _, rest = pending.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(rest) < length:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed")
            rest += chunk
        state["pending"] = rest[length:]

    def connect():
        state["pending"] = b""
        return connect_http(port, timeout)

    return honest(connect, exchange, announces)


def honest_ws(port, announces, timeout):
    def exchange(s, i):
        message = json.dumps(
            {
                "action": "announce",
                "info_hash": "\u0001" * 20,
                "peer_id": f"-WW0001-{i:012d}",
                "left": 1,
                "uploaded": 0,
                "downloaded": 0,
                "numwant": 0,
                "offers": [],
            }
        ).encode()
        s.sendall(client_frame(0x1, message))
        while True:
            b0, b1 = read_exact(s, 2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", read_exact(s, 2))[0]
            elif n == 127:
                n = struct.unpack("!Q", read_exact(s, 8))[0]
            read_exact(s, n)
            if b0 & 0x0F == 0x1:
                return

    return honest(lambda: ws_upgrade(port, timeout), exchange, announces)


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_scenario(binary, protocol, scenario, args):
    proc, port, config = start_tracker(binary, protocol, args.tracker_cpu)
    stop = multiprocessing.Event()
    worker = None
    try:
        if scenario != "none":
            worker = multiprocessing.Process(target=hostile, args=(scenario, port, stop))
            worker.start()
            time.sleep(1)  # the flood is under way before the honest client starts
        honest = honest_http if protocol == "http" else honest_ws
        latencies, lost = honest(port, args.announces, args.timeout)
    finally:
        stop.set()
        if worker is not None:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
        stop_tracker(proc, config)
    return latencies, lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker-bin", action="append", required=True)
    parser.add_argument("--label", action="append")
    parser.add_argument("--announces", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--tracker-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    labels = args.label or [os.path.basename(b) for b in args.tracker_bin]
    if len(labels) != len(args.tracker_bin):
        sys.exit("give one --label per --tracker-bin")
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    name = os.path.basename(args.tracker_bin[0])
    protocol = "http" if "http" in name else "ws"
    scenarios = ["none", "http-pipeline"] if protocol == "http" else [
        "none",
        "ws-ping-flood",
        "ws-pong-stream",
    ]
    print(f"| scenario | build | p50 ms | p99 ms | max ms | unanswered of {args.announces} |")
    print("|---|---|---|---|---|---|")
    for scenario in scenarios:
        for binary, label in zip(args.tracker_bin, labels):
            latencies, lost = run_scenario(binary, protocol, scenario, args)
            ms = [1000 * x for x in latencies]
            print(
                f"| {scenario} | {label} | {percentile(ms, 50):.2f} | "
                f"{percentile(ms, 99):.2f} | {max(ms, default=float('nan')):.1f} | {lost} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
