#!/usr/bin/python3
"""End-to-end test of a shoal cluster with real BitTorrent clients.

Three tracker nodes share their swarms over a NATS server (Debian's nats-server,
started on a free loopback port): two UDP nodes, u1 and u2 (`tracker_udp`, which
accept each other's connection ids through a shared secret file), and one HTTP node,
h1 (`tracker_http`). One info dict of a random payload goes into three .torrent
files that differ only in their announce URL, so they share one info hash: each
client is told of one node only, and finds the others only through the cluster.
DHT, PEX, local peer discovery and port mapping are off in every client and the
torrent is private, as in e2e/real_clients.py, whose clients, scrapes and reporting
this test reuses by importing it. Run with Debian's interpreter (the one that can
import Debian's python3-libtorrent):

    /usr/bin/python3 e2e/cluster_clients.py \
        --udp-bin target/release/tracker_udp --http-bin target/release/tracker_http

The test checks:
  * every node hears the two others (`cluster.live_nodes == 2` in its /stats.json);
  * the libtorrent seeder, announced to u1 only, shows in a scrape of every node (u1
    and u2 over UDP, h1 over HTTP) as the one seeder;
  * aria2c, announcing to u2 only, downloads the payload intact (SHA-256); then every
    node reports 2 seeders, at least one completed download and no leechers;
  * after aria2c is stopped with SIGINT (it announces `stopped` to u2), every node's
    seeder count drops back to 1 within one announce interval (peers would live far
    longer than the run otherwise, so only the replicated `stopped` explains it);
  * transmission-daemon, announcing to h1 only, downloads the payload intact, every
    byte of it uploaded by libtorrent, and no announce of its fails; then every node
    reports 2 seeders, at least two completed downloads and no leechers;
  * after its torrent is stopped over RPC (it announces `stopped` to h1), every node's
    seeder count is back to 1, and the daemon exits with status 0 on SIGTERM;
  * every node exits with status 0 on SIGTERM.
The nodes' cluster counters (changes published and applied, gaps, bad batches) are
printed at the end, not asserted.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_clients as rc  # noqa: E402 - needs the path above; exits 2 without libtorrent

from real_clients import LOOPBACK, TestFailure, log  # noqa: E402

lt = rc.lt

CLUSTER_NAME = "e2e"
METRICS_RE = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
# What a node's `cluster` object in /stats.json shows at the end of the run.
CLUSTER_FIGURES = (
    "live_nodes",
    "changes_published",
    "changes_applied",
    "changes_dropped_outgoing",
    "changes_dropped_incoming",
    "remote_peers",
    "sequence_gaps",
    "bad_batches",
    "slow_consumer",
    "resyncs",
    "resyncs_failed",
)


def stop_child(proc, name, deadline, sig=signal.SIGTERM, seconds=10.0):
    """Sends `sig` to `proc` and waits for it to exit with status 0."""
    log(f"stopping {name} with {signal.Signals(sig).name}")
    proc.send_signal(sig)
    try:
        status = proc.wait(timeout=max(1.0, min(seconds, deadline.remaining())))
    except subprocess.TimeoutExpired:
        raise TestFailure(f"{name} did not exit within {seconds:.0f} s of {sig.name}") from None
    if status != 0:
        raise TestFailure(f"{name} exited with status {status} after {sig.name} (expected 0)")
    log(f"{name} exited with status 0")


def kill_child(proc):
    """Kills `proc` if it still runs (cleanup: no questions asked)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------
# nats-server
# --------------------------------------------------------------------------


class Nats:
    """A nats-server on a free loopback port, as the cluster's bus."""

    def __init__(self, binary):
        self.binary = binary
        self.port = None
        self.proc = None
        self.out = None

    def url(self):
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self, deadline):
        self.port = rc.free_port(socket.SOCK_STREAM)
        cmd = [self.binary, "-a", LOOPBACK, "-p", str(self.port)]
        log(f"starting nats-server: {' '.join(cmd)}")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.out = rc.LineCollector(self.proc.stdout)
        end = deadline.cap(10.0)
        while True:
            if self.proc.poll() is not None:
                raise TestFailure(f"nats-server exited early with status {self.proc.returncode}")
            if self.greets():
                log(f"nats-server accepts connections on {self.url()}")
                return
            if time.monotonic() >= end:
                raise TestFailure(f"nats-server did not accept connections on {self.url()} within 10 s")
            time.sleep(0.05)

    def stop(self, deadline):
        """SIGTERM, and its exit. Not the system under test: nats-server 2.9 exits with
        status 1 after SIGTERM, which is therefore not checked."""
        log("stopping nats-server with SIGTERM")
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=max(1.0, min(10.0, deadline.remaining())))
        except subprocess.TimeoutExpired:
            raise TestFailure("nats-server did not exit within 10 s of SIGTERM") from None
        log(f"nats-server exited with status {status}")

    def greets(self):
        """Whether a connection is accepted and greeted with NATS's INFO line."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1.0) as s:
                return s.recv(4).startswith(b"INFO")
        except OSError:
            return False


# --------------------------------------------------------------------------
# tracker nodes
# --------------------------------------------------------------------------


class Node:
    """One tracker process of the cluster: `protocol` "udp" (tracker_udp) or "http"
    (tracker_http), on a port of its own choosing that it logs."""

    def __init__(self, name, protocol, binary, tmp):
        self.name = name
        self.protocol = protocol
        self.binary = binary
        self.tmp = tmp
        self.proc = None
        self.out = None
        self.err = None
        self.port = None
        self.metrics_port = None

    def config(self, nats_url, secret_path):
        """Its config file: the short announce interval of real_clients.py, one worker
        of each kind, ports chosen by the tracker, and the [cluster] section."""
        text = (
            'log_level = "info"\n'
            "[network]\n"
            f'address = "{LOOPBACK}:0"\n'
            "[swarm]\n"
            f"announce_interval_secs = {rc.ANNOUNCE_INTERVAL}\n"
            "[workers]\n"
            "socket_workers = 1\n"
            "request_workers = 1\n"
            "[metrics]\n"
            f'address = "{LOOPBACK}:0"\n'
        )
        if self.protocol == "http":
            # Must not exceed the announce interval (the default would).
            text += "[http]\nmin_announce_interval_secs = 1\n"
        text += (
            "[cluster]\n"
            "enabled = true\n"
            f"nats_url = {rc.toml_string(nats_url)}\n"
            f"name = {rc.toml_string(CLUSTER_NAME)}\n"
            f"node_id = {rc.toml_string(self.name)}\n"
        )
        if self.protocol == "udp":
            text += f"connection_id_secret_path = {rc.toml_string(secret_path)}\n"
        return text

    def start(self, nats_url, secret_path, deadline):
        config = os.path.join(self.tmp, f"{self.name}.toml")
        with open(config, "w") as f:
            f.write(self.config(nats_url, secret_path))
        cmd = [self.binary, "-c", config]
        log(f"starting node {self.name}: {' '.join(cmd)}")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.tmp,
            start_new_session=True,
        )
        self.err = rc.LineCollector(self.proc.stderr)
        self.out = rc.LineCollector(self.proc.stdout)
        listen = rc.listen_re(self.protocol)
        end = deadline.cap(10.0)
        while True:
            for line in self.err.snapshot() + self.out.snapshot():
                m = listen.search(line)
                if m:
                    self.port = int(m.group(1))
                m = METRICS_RE.search(line)
                if m:
                    self.metrics_port = int(m.group(1))
            if self.port is not None and self.metrics_port is not None:
                break
            if self.proc.poll() is not None:
                raise TestFailure(f"node {self.name} exited early with status {self.proc.returncode}")
            if time.monotonic() >= end:
                raise TestFailure(
                    f"node {self.name} did not log 'listening on {self.protocol}://127.0.0.1:PORT' "
                    "and 'metrics on http://127.0.0.1:PORT/metrics' within 10 s"
                )
            time.sleep(0.05)
        log(
            f"node {self.name} listens on {self.url()}, metrics on "
            f"http://{LOOPBACK}:{self.metrics_port}/stats.json"
        )

    def url(self):
        return rc.tracker_url(self.protocol, self.port)

    def cluster_stats(self):
        """The `cluster` object of its /stats.json."""
        conn = http.client.HTTPConnection(LOOPBACK, self.metrics_port, timeout=3.0)
        try:
            conn.request("GET", "/stats.json")
            response = conn.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TestFailure(f"node {self.name}: GET /stats.json failed: {exc}") from None
        finally:
            conn.close()
        if status != 200:
            raise TestFailure(f"node {self.name}: GET /stats.json answered HTTP {status}")
        try:
            cluster = json.loads(body)["cluster"]
        except (ValueError, KeyError, TypeError):
            raise TestFailure(
                f"node {self.name}: /stats.json has no cluster object: {body[:300]!r}"
            ) from None
        if not isinstance(cluster, dict):
            raise TestFailure(f"node {self.name}: /stats.json's cluster is not an object")
        return cluster

    def scrape(self, info_hash):
        """(seeders, completed, leechers) of `info_hash` on this node."""
        if self.protocol == "udp":
            return rc.scrape_udp(self.port, info_hash)
        return rc.scrape_http(self.port, info_hash)


# --------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------


class ClusterRun(rc.Run):
    """The scenario. A `real_clients.Run` for its payload, aria2c, Transmission and
    reporting methods, which find the torrent to use in `self.torrent_path` (set before
    each client starts) and the downloaders' protocol in `self.protocol` ("udp": what
    aria2c needs to announce to u2; Transmission's settings depend only on "https")."""

    def __init__(self, args):
        super().__init__(argparse.Namespace(**vars(args), protocol="udp"))
        self.nats = Nats(args.nats_bin)
        self.nodes = [
            Node("u1", "udp", args.udp_bin, self.tmp),
            Node("u2", "udp", args.udp_bin, self.tmp),
            Node("h1", "http", args.http_bin, self.tmp),
        ]
        self.torrents = {}

    # ---- cluster ----

    def write_secret(self):
        """The shared connection-id secret: 64 hex digits in a file of mode 0600."""
        path = os.path.join(self.tmp, "cluster.secret")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return path

    def start_cluster(self):
        self.nats.start(self.deadline)
        secret = self.write_secret()
        for node in self.nodes:
            node.start(self.nats.url(), secret, self.deadline)
        end = self.deadline.cap(20.0)
        for node in self.nodes:
            while True:
                live = node.cluster_stats().get("live_nodes")
                if live == len(self.nodes) - 1:
                    break
                if time.monotonic() >= end:
                    raise TestFailure(
                        f"node {node.name} hears {live} other nodes, not {len(self.nodes) - 1}, "
                        "within 20 s"
                    )
                time.sleep(0.05)
        log(f"every node hears the {len(self.nodes) - 1} others (cluster.live_nodes)")

    def poll_every_node(self, want, describe, seconds=15.0):
        """Scrapes every node until `want(figures)` holds on each, in turn (within
        `seconds` for each); {node name: its last figures}."""
        found = {}
        for node in self.nodes:

            def scrape_once(node=node):
                return node.scrape(self.info_hash)

            figures = rc.poll_scrape(
                scrape_once, want, f"{describe} on node {node.name}", self.deadline, seconds
            )
            log(f"node {node.name}: seeders={figures[0]} completed={figures[1]} leechers={figures[2]}")
            found[node.name] = figures
        return found

    def log_cluster_figures(self):
        for node in self.nodes:
            stats = node.cluster_stats()
            log(f"node {node.name} cluster: " + " ".join(f"{k}={stats.get(k)}" for k in CLUSTER_FIGURES))

    # ---- torrents ----

    def make_torrents(self):
        """One info dict of the payload, and a .torrent of it for each node that
        announces to that node only. They must share the info hash."""
        fs = lt.file_storage()
        lt.add_files(fs, self.payload_path)
        # v1 only, as in real_clients.py: aria2 1.36 knows no BitTorrent v2.
        ct = lt.create_torrent(fs, rc.PIECE_SIZE, lt.create_torrent.v1_only)
        ct.set_priv(True)
        lt.set_piece_hashes(ct, self.seed_dir)
        info = ct.generate()[b"info"]
        hashes = set()
        for node in self.nodes:
            path = os.path.join(self.tmp, f"payload-{node.name}.torrent")
            metainfo = {b"announce": node.url().encode(), b"created by": b"shoal e2e", b"info": info}
            with open(path, "wb") as f:
                f.write(lt.bencode(metainfo))
            parsed = lt.torrent_info(path)
            if not parsed.priv():
                raise TestFailure(f"{path} is not private")
            trackers = [t.url for t in parsed.trackers()]
            if trackers != [node.url()]:
                raise TestFailure(f"{path} announces to {trackers}, not to {node.url()} only")
            hashes.add(parsed.info_hashes().v1.to_bytes())
            self.torrents[node.name] = path
        if len(hashes) != 1:
            raise TestFailure(f"the torrents have {len(hashes)} info hashes, not one")
        self.info_hash = hashes.pop()
        log(
            f"torrents: info hash {self.info_hash.hex()}, private, one per node "
            f"({', '.join(self.torrents)})"
        )

    # ---- the whole scenario ----

    def run(self):
        log(f"temp dir {self.tmp}")
        self.start_cluster()
        self.make_payload()
        self.make_torrents()

        self.seeder = rc.Seeder()
        self.seeder.add(self.torrents["u1"], self.seed_dir)
        log(
            f"libtorrent {lt.__version__} listening on {LOOPBACK}:{self.seeder.listen_port()}, "
            "announcing to u1"
        )
        self.seeder.wait_seeding(self.deadline)
        log("libtorrent checked the payload and is seeding")
        # Announced to u1 only: u2 and h1 know it from the cluster.
        self.poll_every_node(
            lambda f: f[0] == 1 and f[2] == 0, "seeders=1 leechers=0 (the libtorrent seeder)"
        )

        self.torrent_path = self.torrents["u2"]
        started = time.monotonic()
        log("aria2c announces to u2 only")
        self.start_aria2()
        self.wait_download()
        log(f"transfer to aria2c took {time.monotonic() - started:.1f}s")
        self.poll_every_node(
            lambda f: f[0] == 2 and f[1] >= 1 and f[2] == 0, "seeders=2 completed>=1 leechers=0"
        )

        self.stop_aria2()
        # The window is one announce interval, as in real_clients.py: peers live far
        # longer than the run, so only aria2c's `stopped` (to u2) passed on by the
        # cluster lowers the count on u1 and h1.
        self.poll_every_node(
            lambda f: f[0] == 1 and f[2] == 0,
            "seeders=1 leechers=0 after aria2c stopped",
            seconds=rc.ANNOUNCE_INTERVAL,
        )

        # Transmission downloads while libtorrent is the only other peer, so every
        # byte comes from the seeder that announced to u1.
        self.torrent_path = self.torrents["h1"]
        uploaded = self.seeder.uploaded()
        started = time.monotonic()
        log("transmission-daemon announces to h1 only")
        self.start_transmission()
        self.wait_transmission_download()
        log(f"transfer to transmission-daemon took {time.monotonic() - started:.1f}s")
        self.seeder.wait_uploaded(uploaded + rc.PAYLOAD_SIZE, self.deadline)
        log(f"libtorrent uploaded {self.seeder.uploaded() - uploaded} payload bytes meanwhile")
        # Two downloads completed, each counted where it was announced (u2, h1) and
        # passed on: every node's count is the cluster's.
        with_tr = self.poll_every_node(
            lambda f: f[0] == 2 and f[1] >= 2 and f[2] == 0,
            "seeders=2 completed>=2 leechers=0 with Transmission",
        )
        completed = sorted({f[1] for f in with_tr.values()})
        if len(completed) > 1:
            log(f"note: the nodes report different completed counts: {completed}")

        self.stop_transmission_torrent()
        self.poll_every_node(
            lambda f: f[0] == 1 and f[2] == 0,
            "seeders=1 leechers=0 after Transmission stopped",
            seconds=rc.ANNOUNCE_INTERVAL,
        )
        self.stop_transmission()

        self.log_cluster_figures()
        log("stopping libtorrent")
        self.seeder.close()
        for node in self.nodes:
            stop_child(node.proc, f"node {node.name}", self.deadline)
        self.nats.stop(self.deadline)

    # ---- reporting and cleanup ----

    def dump_logs(self):
        def section(title, lines):
            print(f"----- {title} ({len(lines)} lines) -----")
            for line in lines:
                print(line)

        if self.nats.out is not None:
            section("nats-server output", self.nats.out.snapshot())
        for node in self.nodes:
            if node.err is not None:
                section(f"node {node.name} stderr", node.err.snapshot())
            if node.out is not None:
                section(f"node {node.name} stdout", node.out.snapshot())
            if node.metrics_port is not None and node.proc.poll() is None:
                try:
                    stats = json.dumps(node.cluster_stats(), sort_keys=True)
                except TestFailure as exc:
                    stats = str(exc)
                section(f"node {node.name} /stats.json cluster", [stats])
        # aria2c, Transmission and libtorrent.
        super().dump_logs()

    def cleanup(self):
        for node in self.nodes:
            kill_child(node.proc)
        kill_child(self.nats.proc)
        for collector in [self.nats.out] + [c for n in self.nodes for c in (n.out, n.err)]:
            if collector is not None:
                collector.thread.join(timeout=2)
        # aria2c, Transmission, libtorrent, and the temp dir.
        super().cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--udp-bin", required=True, help="path of the tracker_udp binary (nodes u1, u2)")
    ap.add_argument("--http-bin", required=True, help="path of the tracker_http binary (node h1)")
    ap.add_argument(
        "--nats-bin", default="nats-server", help="the nats-server to run (default: from PATH)"
    )
    ap.add_argument("--timeout", type=float, default=180.0, help="overall time budget in seconds")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir for inspection")
    ap.add_argument("--verbose", action="store_true", help="print the logs on success too")
    args = ap.parse_args()
    summary = "e2e cluster real clients"
    for name in ("udp_bin", "http_bin"):
        path = os.path.abspath(getattr(args, name))
        setattr(args, name, path)
        if not os.access(path, os.X_OK):
            print(f"tracker binary not found or not executable: {path}")
            print(f"{summary}: 0 passed, 1 failed")
            return 1
    nats = shutil.which(args.nats_bin) or shutil.which(args.nats_bin, path="/usr/sbin:/sbin")
    for tool, found in (
        (args.nats_bin, nats),
        ("aria2c", shutil.which("aria2c")),
        ("transmission-daemon", shutil.which("transmission-daemon")),
    ):
        if found is None:
            print(f"{tool} not found; run scripts/install-test-deps.sh")
            print(f"{summary}: 0 passed, 1 failed")
            return 1
    args.nats_bin = nats

    return rc.run_and_report(ClusterRun(args), summary, args)


if __name__ == "__main__":
    sys.exit(main())
