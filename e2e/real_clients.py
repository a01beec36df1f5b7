#!/usr/bin/python3
"""End-to-end test of a shoal tracker with real BitTorrent clients.

Covers both trackers: the UDP one (BEP 15, `tracker_udp`) and the HTTP one
(BEP 3 announce, BEP 48 scrape, `tracker_http`), the latter over plain HTTP and
over HTTPS (`--protocol https`: a self-signed certificate for 127.0.0.1 is made
with openssl in the temp dir, and every client is told to trust it while
still checking certificates: a client that does not trust it fails its
announces or scrapes). A libtorrent session seeds a random payload; aria2c
downloads it, and after aria2c has left, Transmission 3.00 (transmission-daemon,
driven over its RPC) downloads it too. Each finds the others only through the
tracker under test: DHT, PEX, local peer discovery and port mapping are off in
every client, and the torrent is private. All traffic stays on 127.0.0.1, and
Transmission keeps its config in the temp dir. Run with Debian's interpreter,
which is the one that can import Debian's python3-libtorrent:

    /usr/bin/python3 e2e/real_clients.py --protocol udp --tracker-bin target/release/tracker_udp
    /usr/bin/python3 e2e/real_clients.py --protocol http --tracker-bin target/release/tracker_http
    /usr/bin/python3 e2e/real_clients.py --protocol https --tracker-bin target/release/tracker_http

The test checks:
  * the payload arrives at aria2c intact (SHA-256);
  * while both clients run, a scrape (BEP 15 over UDP, or GET /scrape with a
    bencoded answer over HTTP or HTTPS) reports 2 seeders, at least one completed
    download and no leechers;
  * after aria2c is stopped with SIGINT (it then announces `stopped`), the
    seeder count drops by one;
  * the payload arrives at Transmission intact (SHA-256), every byte of it
    uploaded by libtorrent, and no announce of Transmission's fails;
  * with Transmission seeding, the scrape reports one seeder more and exactly
    one completed download more than before it came, and no leechers;
  * after its torrent is stopped over RPC (it then announces `stopped`), the
    seeder count is back where it was, and the daemon exits with status 0 on
    SIGTERM;
  * the tracker exits with status 0 on SIGTERM.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

try:
    import libtorrent as lt
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"cannot import libtorrent ({exc}); run this script with Debian's /usr/bin/python3 "
        "after scripts/install-test-deps.sh\n"
    )
    sys.exit(2)

LOOPBACK = "127.0.0.1"
PAYLOAD_NAME = "payload.bin"
PAYLOAD_SIZE = 4 * 1024 * 1024
PIECE_SIZE = 64 * 1024
ANNOUNCE_INTERVAL = 5
PROTOCOLS = ("udp", "http", "https")
TRANSMISSION_SESSION_ID_DIR = "/tmp"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

PROTOCOL_ID = 0x41727101980
ACTION_CONNECT = 0
ACTION_SCRAPE = 2
ACTION_ERROR = 3

START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", flush=True)


class TestFailure(Exception):
    """The test failed for the reason given."""


class Deadline:
    """The overall time budget of the run."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def cap(self, seconds):
        """The end time of a phase of at most `seconds`, within the budget."""
        return time.monotonic() + max(0.0, min(seconds, self.remaining()))


class LineCollector:
    """Reads a child's pipe in a thread so that it never fills, keeping every line."""

    def __init__(self, stream):
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for raw in iter(stream.readline, b""):
            line = ANSI_RE.sub("", raw.decode("utf-8", "replace").rstrip("\r\n"))
            with self.lock:
                self.lines.append(line)
        stream.close()

    def snapshot(self):
        with self.lock:
            return list(self.lines)


def free_port(kind):
    """A port on 127.0.0.1 that is free right now (small race accepted)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_port_both():
    """A port free for both TCP and UDP on 127.0.0.1 right now."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise TestFailure("could not find a free port on 127.0.0.1")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def listen_re(protocol):
    """The tracker's log line that gives the port it listens on."""
    return re.compile(rf"listening on {protocol}://127\.0\.0\.1:(\d+)")


def tracker_url(protocol, port):
    """The announce URL put in the torrent."""
    return f"{protocol}://{LOOPBACK}:{port}/announce"


# --------------------------------------------------------------------------
# BEP 15 scrape client
# --------------------------------------------------------------------------


def _udp_exchange(sock, addr, request, tid, expected_action, min_len, attempts=4, wait=1.5):
    """Sends `request` and returns the matching response (same transaction id)."""
    for _ in range(attempts):
        sock.sendto(request, addr)
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, src = sock.recvfrom(65536)
            except socket.timeout:
                break
            if src != addr or len(data) < 8:
                continue
            action, rtid = struct.unpack(">ii", data[:8])
            if rtid != tid:
                continue
            if action == ACTION_ERROR:
                raise TestFailure(f"tracker answered with an error: {data[8:]!r}")
            if action != expected_action or len(data) < min_len:
                raise TestFailure(
                    f"unexpected tracker response (action {action}, {len(data)} bytes): {data.hex()}"
                )
            return data
    raise TestFailure(f"no answer from the tracker at {addr[0]}:{addr[1]} after {attempts} tries")


def scrape_udp(port, info_hash):
    """BEP 15 connect + scrape of one info hash: (seeders, completed, leechers)."""
    addr = (LOOPBACK, port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        tid = random.getrandbits(31)
        data = _udp_exchange(
            sock, addr, struct.pack(">qii", PROTOCOL_ID, ACTION_CONNECT, tid), tid, ACTION_CONNECT, 16
        )
        (connection_id,) = struct.unpack(">q", data[8:16])
        tid = random.getrandbits(31)
        request = struct.pack(">qii", connection_id, ACTION_SCRAPE, tid) + info_hash
        data = _udp_exchange(sock, addr, request, tid, ACTION_SCRAPE, 20)
        return struct.unpack(">iii", data[8:20])


# --------------------------------------------------------------------------
# HTTP scrape client (BEP 48) and a small bencode reader
# --------------------------------------------------------------------------


def bdecode(data):
    """Decodes one bencoded value that spans all of `data` (bytes). Strict: integers
    without leading zeros or "-0", dictionary keys byte strings in sorted order,
    no trailing bytes. Raises ValueError."""
    value, end = _bdecode_at(data, 0, 0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} trailing bytes after the value")
    return value


def _bdecode_at(data, i, depth):
    if depth > 32:
        raise ValueError("nested too deep")
    if i >= len(data):
        raise ValueError("truncated")
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)  # ValueError when missing
        text = data[i + 1 : end]
        if not re.fullmatch(rb"-?(0|[1-9][0-9]*)", text) or text == b"-0":
            raise ValueError(f"bad integer {text!r} at {i}")
        return int(text), end + 1
    if c == b"l":
        items, i = [], i + 1
        while data[i : i + 1] != b"e":
            item, i = _bdecode_at(data, i, depth + 1)
            items.append(item)
        return items, i + 1
    if c == b"d":
        out, i, previous = {}, i + 1, None
        while data[i : i + 1] != b"e":
            if not data[i : i + 1].isdigit():
                raise ValueError(f"dictionary key at {i} is not a byte string")
            key, i = _bdecode_at(data, i, depth + 1)
            if previous is not None and key <= previous:
                raise ValueError(f"dictionary key {key!r} not after {previous!r}")
            value, i = _bdecode_at(data, i, depth + 1)
            out[key] = value
            previous = key
        return out, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        text = data[i:colon]
        if not re.fullmatch(rb"0|[1-9][0-9]*", text):
            raise ValueError(f"bad string length {text!r} at {i}")
        start, n = colon + 1, int(text)
        if start + n > len(data):
            raise ValueError("truncated string")
        return data[start : start + n], start + n
    raise ValueError(f"unexpected byte {c!r} at {i}")


def scrape_http(port, info_hash, ssl_context=None, attempts=4, wait=3.0, passkey=None):
    """GET /scrape of one info hash: (seeders, completed, leechers). Over HTTPS
    when `ssl_context` is given (it must then verify the tracker's certificate);
    GET /PASSKEY/scrape, a private tracker's form, when `passkey` is given."""
    prefix = "" if passkey is None else f"/{passkey}"
    path = prefix + "/scrape?info_hash=" + urllib.parse.quote_from_bytes(info_hash, safe="")
    scheme = "http" if ssl_context is None else "https"
    problem = None
    for _ in range(attempts):
        if ssl_context is None:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=wait)
        else:
            conn = http.client.HTTPSConnection(LOOPBACK, port, timeout=wait, context=ssl_context)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            status, body = response.status, response.read()
        except ssl.SSLCertVerificationError as exc:
            # Not transient: the tracker presents a certificate that the test CA
            # does not vouch for.
            raise TestFailure(f"scrape over HTTPS: certificate check failed: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
            continue
        finally:
            conn.close()
        if status != 200:
            raise TestFailure(f"scrape answered HTTP {status}: {body[:300]!r}")
        try:
            answer = bdecode(body)
        except ValueError as exc:
            raise TestFailure(f"scrape answer is not bencode ({exc}): {body[:300]!r}") from None
        if not isinstance(answer, dict):
            raise TestFailure(f"scrape answer is not a dictionary: {body[:300]!r}")
        if b"failure reason" in answer:
            raise TestFailure(f"tracker answered the scrape with a failure: {answer[b'failure reason']!r}")
        files = answer.get(b"files")
        entry = files.get(info_hash) if isinstance(files, dict) else None
        if not isinstance(entry, dict):
            raise TestFailure(f"scrape answer has no files entry for the info hash: {body[:300]!r}")
        figures = tuple(entry.get(k) for k in (b"complete", b"downloaded", b"incomplete"))
        if not all(isinstance(v, int) and v >= 0 for v in figures):
            raise TestFailure(f"scrape answer lacks complete/downloaded/incomplete counts: {body[:300]!r}")
        return figures
    raise TestFailure(
        f"no scrape answer from {scheme}://{LOOPBACK}:{port} after {attempts} tries ({problem})"
    )


def toml_string(text):
    """`text` as a TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def https_client_context(ca_file):
    """A TLS client context that trusts `ca_file` only and checks the host name."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def scrape(protocol, port, info_hash, ssl_context=None):
    """Scrape of one info hash over the tracker's protocol: (seeders, completed, leechers).
    `ssl_context` is for "https" (required there)."""
    if protocol == "udp":
        return scrape_udp(port, info_hash)
    if protocol == "https":
        if ssl_context is None:
            raise TestFailure("internal: an HTTPS scrape needs an ssl context")
        return scrape_http(port, info_hash, ssl_context)
    return scrape_http(port, info_hash)


def poll_scrape(scrape_once, want, describe, deadline, seconds=15.0):
    """Calls `scrape_once()` (a scrape: (seeders, completed, leechers)) until
    `want(figures)` holds or the phase ends; returns the last figures."""
    end = deadline.cap(seconds)
    last = None
    while True:
        figures = scrape_once()
        if figures != last:
            log(f"scrape: seeders={figures[0]} completed={figures[1]} leechers={figures[2]}")
            last = figures
        if want(figures):
            return figures
        if time.monotonic() >= end:
            raise TestFailure(
                f"scrape never showed {describe}; last: seeders={figures[0]} "
                f"completed={figures[1]} leechers={figures[2]}"
            )
        time.sleep(0.5)


# --------------------------------------------------------------------------
# Transmission RPC client
# --------------------------------------------------------------------------


class TransmissionRpc:
    """The JSON RPC of one transmission-daemon on 127.0.0.1 (what
    transmission-remote speaks): POST /transmission/rpc, with the session id
    that a 409 answer hands out."""

    def __init__(self, port):
        self.port = port
        self.session_id = None

    def call(self, method, arguments=None, timeout=5.0):
        """The answer's `arguments`; TestFailure unless the daemon answers "success".
        OSError when it cannot be reached."""
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        for _ in range(2):
            headers = {"Content-Type": "application/json"}
            if self.session_id is not None:
                headers["X-Transmission-Session-Id"] = self.session_id
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
            try:
                conn.request("POST", "/transmission/rpc", body, headers)
                response = conn.getresponse()
                status, data = response.status, response.read()
                session_id = response.getheader("X-Transmission-Session-Id")
            finally:
                conn.close()
            if status == 409 and session_id:
                self.session_id = session_id
                continue
            if status != 200:
                raise TestFailure(f"transmission RPC {method}: HTTP {status}: {data[:300]!r}")
            try:
                answer = json.loads(data)
            except ValueError:
                raise TestFailure(f"transmission RPC {method}: not JSON: {data[:300]!r}") from None
            if answer.get("result") != "success":
                raise TestFailure(f"transmission RPC {method} failed: {answer.get('result')!r}")
            return answer.get("arguments", {})
        raise TestFailure(f"transmission RPC {method}: no session id accepted")


# --------------------------------------------------------------------------
# libtorrent seeder
# --------------------------------------------------------------------------


class Seeder:
    """A libtorrent 2.0 session seeding one torrent, on 127.0.0.1 only.

    `ca_file`: the only CA the session trusts for HTTPS trackers (their
    certificates are checked, `validate_https_trackers` stays on)."""

    def __init__(self, ca_file=None):
        settings = {
            "listen_interfaces": f"{LOOPBACK}:0",
            "enable_dht": False,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "allow_multiple_connections_per_ip": True,
            "ssrf_mitigation": False,
            "announce_to_all_trackers": True,
            "announce_to_all_tiers": True,
            # Follow the tracker's short interval (the default clamps it to 300 s).
            "min_announce_interval": 1,
            "tracker_receive_timeout": 5,
            "tracker_completion_timeout": 10,
            "stop_tracker_timeout": 3,
            "peer_connect_timeout": 5,
            "handshake_timeout": 5,
            "min_reconnect_time": 1,
            "alert_mask": lt.alert_category.error
            | lt.alert_category.status
            | lt.alert_category.tracker
            | lt.alert_category.storage,
        }
        if ca_file is not None:
            settings["validate_https_trackers"] = True
        # flags=0: none of the default plugins (so no ut_pex) and none of the
        # default features (DHT, LSD, UPnP, NAT-PMP) started.
        self.session = self._new_session(settings, ca_file)
        self.handle = None
        self.alerts = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump_alerts, daemon=True)
        self._thread.start()

    @staticmethod
    def _new_session(settings, ca_file):
        if ca_file is None:
            return lt.session(settings, 0)
        # libtorrent 2.0 has no setting for the CA of HTTPS trackers: its
        # session's TLS context calls OpenSSL's set_default_verify_paths() when
        # it is made, and OpenSSL reads SSL_CERT_FILE/SSL_CERT_DIR then. So the
        # test CA replaces the system store for this session only. (Without
        # it the announces fail: tracker_error_alert "certificate verify
        # failed".)
        saved = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        os.environ["SSL_CERT_FILE"] = ca_file
        os.environ["SSL_CERT_DIR"] = os.path.dirname(ca_file)
        try:
            return lt.session(settings, 0)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _pump_alerts(self):
        next_reannounce = time.monotonic() + ANNOUNCE_INTERVAL
        while not self._stop.is_set():
            self.session.wait_for_alert(200)
            for alert in self.session.pop_alerts():
                line = f"{type(alert).__name__}: {alert.message()}"
                self.alerts.append(line)
            # libtorrent re-announces to a UDP tracker at most once a minute
            # whatever interval the tracker asks for (and whatever
            # min_announce_interval says), so a tracker that expires peers
            # after a few intervals would forget it. Follow the tracker's
            # interval by hand instead (for the HTTP tracker too, so that both
            # runs announce alike).
            handle = self.handle
            if handle is not None and time.monotonic() >= next_reannounce:
                next_reannounce = time.monotonic() + ANNOUNCE_INTERVAL
                if handle.is_valid() and handle.status().is_seeding:
                    handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)

    def listen_port(self):
        return self.session.listen_port()

    def uploaded(self):
        """Payload bytes uploaded so far."""
        return self.handle.status().total_payload_upload

    def wait_uploaded(self, total, deadline, seconds=5.0):
        """Waits until `uploaded()` reaches `total` (the counter may trail the
        last piece a little)."""
        end = deadline.cap(seconds)
        while self.uploaded() < total:
            if time.monotonic() >= end:
                raise TestFailure(
                    f"libtorrent uploaded {self.uploaded()} payload bytes in all, "
                    f"expected at least {total}"
                )
            time.sleep(0.1)

    def add(self, torrent_path, save_path):
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent_path)
        params.save_path = save_path
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        self.handle = self.session.add_torrent(params)

    def wait_seeding(self, deadline, seconds=30.0):
        end = deadline.cap(seconds)
        while time.monotonic() < end:
            st = self.handle.status()
            if st.errc.value() != 0:
                raise TestFailure(f"libtorrent torrent error: {st.errc.message()}")
            if st.is_seeding:
                return
            time.sleep(0.1)
        st = self.handle.status()
        raise TestFailure(
            f"libtorrent did not become a seeder after checking (state {st.state}, "
            f"progress {st.progress:.3f})"
        )

    def status_line(self):
        if self.handle is None:
            return "no torrent"
        st = self.handle.status()
        return (
            f"state={st.state} seeding={st.is_seeding} peers={st.num_peers} "
            f"uploaded={st.total_payload_upload} tracker={st.current_tracker!r}"
        )

    def close(self):
        if self.session is None:
            return
        try:
            if self.handle is not None and self.handle.is_valid():
                self.session.remove_torrent(self.handle)
                self.handle = None
            # A short pause lets the `stopped` announce go out before the
            # session is destroyed (the destructor waits at most
            # stop_tracker_timeout for it).
            time.sleep(0.5)
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            session, self.session = self.session, None
            del session


# --------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------


class Run:
    def __init__(self, args):
        self.args = args
        self.protocol = args.protocol
        self.deadline = Deadline(args.timeout)
        self.tmp = tempfile.mkdtemp(prefix=f"shoal-e2e-{args.protocol}-")
        self.tracker = None
        self.tracker_out = None
        self.tracker_err = None
        self.aria2 = None
        self.aria2_out = None
        self.seeder = None
        self.port = None
        self.aria2_log = os.path.join(self.tmp, "aria2c.log")
        self.transmission = None
        self.transmission_out = None
        self.transmission_rpc = None
        self.transmission_id = None
        self.transmission_dir = os.path.join(self.tmp, "transmission-download")
        # HTTPS only: the self-signed certificate (also the clients' only CA),
        # its key, and the scrape's TLS context.
        self.cert_path = None
        self.key_path = None
        self.ssl_context = None

    # ---- certificate (HTTPS) ----

    def make_certificate(self):
        """A self-signed certificate for 127.0.0.1 (an IP subjectAltName, as a
        client checking the URL's host needs), valid for a day, and its key."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise TestFailure("openssl not found; run scripts/install-test-deps.sh")
        self.cert_path = os.path.join(self.tmp, "cert.pem")
        self.key_path = os.path.join(self.tmp, "key.pem")
        cmd = [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={LOOPBACK}", "-addext", f"subjectAltName=IP:{LOOPBACK}",
            "-keyout", self.key_path, "-out", self.cert_path,
        ]  # fmt: skip
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise TestFailure(
                f"openssl req failed with status {result.returncode}: {result.stderr.strip()}"
            )
        self.ssl_context = https_client_context(self.cert_path)
        log(f"self-signed certificate for {LOOPBACK}: {self.cert_path}")

    # ---- tracker ----

    def tracker_config(self):
        """The tracker's config file. Each binary rejects keys it does not know: the
        [http] section is tracker_http's only."""
        text = 'log_level = "info"\n' "[network]\n" f'address = "{LOOPBACK}:0"\n'
        if self.protocol in ("http", "https"):
            # Must not exceed the announce interval (the default, 900, would), and
            # stays below it so that it never holds back the clients' announces.
            text += "[http]\nmin_announce_interval_secs = 1\n"
        if self.protocol == "https":
            text += (
                "[tls]\n"
                "enabled = true\n"
                f"certificate_chain_path = {toml_string(self.cert_path)}\n"
                f"private_key_path = {toml_string(self.key_path)}\n"
            )
        text += "[swarm]\n" f"announce_interval_secs = {ANNOUNCE_INTERVAL}\n"
        return text

    def start_tracker(self):
        config = os.path.join(self.tmp, "tracker.toml")
        with open(config, "w") as f:
            f.write(self.tracker_config())
        cmd = [self.args.tracker_bin, "-c", config]
        log(f"starting tracker: {' '.join(cmd)}")
        self.tracker = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.tmp,
            start_new_session=True,
        )
        self.tracker_err = LineCollector(self.tracker.stderr)
        self.tracker_out = LineCollector(self.tracker.stdout)
        pattern = listen_re(self.protocol)
        end = self.deadline.cap(10.0)
        while time.monotonic() < end:
            for line in self.tracker_err.snapshot():
                m = pattern.search(line)
                if m:
                    self.port = int(m.group(1))
                    log(f"tracker listens on {self.protocol}://{LOOPBACK}:{self.port}")
                    return
            if self.tracker.poll() is not None:
                raise TestFailure(f"the tracker exited early with status {self.tracker.returncode}")
            time.sleep(0.05)
        raise TestFailure(
            f"the tracker did not log 'listening on {self.protocol}://127.0.0.1:PORT' within 10 s"
        )

    def scrape(self):
        return scrape(self.protocol, self.port, self.info_hash, self.ssl_context)

    def poll_scrape(self, want, describe, seconds=15.0):
        return poll_scrape(self.scrape, want, describe, self.deadline, seconds)

    def check_plain_http_refused(self):
        """Over HTTPS, the port must not answer a plain-HTTP scrape."""
        try:
            scrape_http(self.port, self.info_hash, attempts=1, wait=3.0)
        except TestFailure as exc:
            log(f"plain HTTP on the HTTPS port is refused, as it should be ({exc})")
            return
        raise TestFailure("the HTTPS tracker answered a plain-HTTP scrape")

    def stop_tracker(self):
        log("stopping the tracker with SIGTERM")
        self.tracker.send_signal(signal.SIGTERM)
        try:
            rc = self.tracker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise TestFailure("the tracker did not exit within 10 s of SIGTERM") from None
        if rc != 0:
            raise TestFailure(f"the tracker exited with status {rc} after SIGTERM (expected 0)")
        log("tracker exited with status 0")

    # ---- payload and torrent ----

    def make_payload(self):
        self.seed_dir = os.path.join(self.tmp, "seed")
        self.download_dir = os.path.join(self.tmp, "download")
        os.makedirs(self.seed_dir)
        os.makedirs(self.download_dir)
        self.payload_path = os.path.join(self.seed_dir, PAYLOAD_NAME)
        with open(self.payload_path, "wb") as f:
            f.write(os.urandom(PAYLOAD_SIZE))
        self.payload_sha = sha256_file(self.payload_path)
        log(f"payload: {PAYLOAD_SIZE} bytes, sha256 {self.payload_sha}")

    def write_torrent(self, url, path):
        """Writes to `path` a private torrent of the payload that announces to `url`;
        returns its lt.torrent_info."""
        fs = lt.file_storage()
        lt.add_files(fs, self.payload_path)
        # v1 only: aria2 1.36 knows no BitTorrent v2, and a hybrid torrent
        # would make libtorrent announce a second (v2) info hash too.
        ct = lt.create_torrent(fs, PIECE_SIZE, lt.create_torrent.v1_only)
        ct.add_tracker(url)
        ct.set_priv(True)
        ct.set_creator("shoal e2e")
        lt.set_piece_hashes(ct, self.seed_dir)
        data = lt.bencode(ct.generate())
        with open(path, "wb") as f:
            f.write(data)
        info = lt.torrent_info(path)
        if not info.priv():
            raise TestFailure("the generated torrent is not private")
        return info

    def make_torrent(self):
        self.torrent_path = os.path.join(self.tmp, "payload.torrent")
        info = self.write_torrent(tracker_url(self.protocol, self.port), self.torrent_path)
        self.info_hash = info.info_hashes().v1.to_bytes()
        log(
            f"torrent: info hash {self.info_hash.hex()}, {info.num_pieces()} pieces, private, "
            f"tracker {tracker_url(self.protocol, self.port)}"
        )

    # ---- aria2c ----

    def aria2_protocol_options(self, listen_port):
        """aria2c's options that depend on the tracker's protocol, and a note for the log."""
        if self.protocol == "http":
            # HTTP announces need nothing: they go over aria2's HTTP client.
            return ["--enable-dht=false", "--enable-dht6=false"], "DHT off"
        if self.protocol == "https":
            # HTTPS announces go over aria2's HTTP client too. The test
            # certificate is added to its CAs; certificates stay checked
            # (without it: "SSL/TLS handshake failure: `not signed by known
            # authorities or invalid' `issuer is not known'").
            options = [
                "--enable-dht=false",
                "--enable-dht6=false",
                "--check-certificate=true",
                f"--ca-certificate={self.cert_path}",
            ]
            return options, "DHT off, test certificate as CA"
        dht_port = free_port(socket.SOCK_DGRAM)
        while dht_port == listen_port:
            dht_port = free_port(socket.SOCK_DGRAM)
        # aria2 sends UDP tracker traffic over its DHT socket: without DHT it
        # ignores udp:// trackers. The private flag keeps DHT off for the
        # torrent itself, and no entry point is given.
        options = [
            "--enable-dht=true",
            "--enable-dht6=false",
            f"--dht-listen-port={dht_port}",
            f"--dht-file-path={os.path.join(self.tmp, 'aria2-dht.dat')}",
        ]
        return options, f"DHT/UDP-tracker port {dht_port}"

    def start_aria2(self):
        listen_port = free_port_both()
        protocol_options, note = self.aria2_protocol_options(listen_port)
        stop_timeout = max(10, int(self.deadline.remaining()) + 30)
        cmd = [
            "aria2c",
            "--no-conf=true",
            f"--dir={self.download_dir}",
            f"--log={self.aria2_log}",
            "--log-level=info",
            "--console-log-level=notice",
            "--summary-interval=0",
            "--show-console-readout=false",
            "--enable-color=false",
            "--disable-ipv6=true",
            "--interface=127.0.0.1",
            f"--listen-port={listen_port}",
            *protocol_options,
            "--enable-peer-exchange=false",
            "--bt-enable-lpd=false",
            f"--bt-tracker-interval={ANNOUNCE_INTERVAL}",
            "--bt-tracker-connect-timeout=5",
            "--bt-tracker-timeout=5",
            f"--bt-stop-timeout={stop_timeout}",
            # Keep seeding after the download until stopped with SIGINT.
            "--seed-ratio=0.0",
            "--check-integrity=true",
            "--file-allocation=none",
            "--auto-file-renaming=false",
            "--allow-overwrite=true",
            f"--stop-with-process={os.getpid()}",
            self.torrent_path,
        ]
        log(f"starting aria2c: listen port {listen_port}, {note}")
        self.aria2 = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
            start_new_session=True,
        )
        self.aria2_out = LineCollector(self.aria2.stdout)

    def wait_download(self):
        target = os.path.join(self.download_dir, PAYLOAD_NAME)
        end = self.deadline.cap(self.deadline.remaining())
        last_size = -1
        last_report = 0.0
        while True:
            if self.aria2.poll() is not None:
                raise TestFailure(f"aria2c exited early with status {self.aria2.returncode}")
            size = os.path.getsize(target) if os.path.exists(target) else -1
            now = time.monotonic()
            if size != last_size and now - last_report > 2:
                log(f"aria2c file: {max(size, 0)} / {PAYLOAD_SIZE} bytes")
                last_size, last_report = size, now
            # aria2c keeps its .aria2 control file while it seeds, and with
            # --file-allocation=none the file reaches full size as soon as
            # the last piece is written: only the content tells completion.
            if size == PAYLOAD_SIZE and sha256_file(target) == self.payload_sha:
                log("aria2c download complete, sha256 matches the payload")
                return
            if now >= end:
                raise TestFailure(
                    f"aria2c did not complete the download within --timeout {self.args.timeout} s "
                    f"(file size {size}, seeder: {self.seeder.status_line()})"
                )
            time.sleep(0.2)

    def stop_aria2(self):
        log("stopping aria2c with SIGINT")
        self.aria2.send_signal(signal.SIGINT)
        try:
            rc = self.aria2.wait(timeout=max(1.0, min(20.0, self.deadline.remaining())))
        except subprocess.TimeoutExpired:
            raise TestFailure("aria2c did not exit within 20 s of SIGINT") from None
        log(f"aria2c exited with status {rc}")

    # ---- Transmission ----

    def transmission_settings(self, peer_port, rpc_port):
        """transmission-daemon's settings.json: peers, announces and RPC on
        127.0.0.1 only, and no way to find peers but the tracker."""
        return {
            "bind-address-ipv4": LOOPBACK,
            "bind-address-ipv6": "::1",
            "peer-port": peer_port,
            "peer-port-random-on-start": False,
            "port-forwarding-enabled": False,  # no UPnP, no NAT-PMP
            "dht-enabled": False,
            "pex-enabled": False,
            "lpd-enabled": False,
            "utp-enabled": False,
            "blocklist-enabled": False,
            "rpc-enabled": True,
            "rpc-bind-address": LOOPBACK,
            "rpc-port": rpc_port,
            "rpc-authentication-required": False,
            "rpc-whitelist-enabled": True,
            "rpc-whitelist": LOOPBACK,
            "watch-dir-enabled": False,
            "download-dir": self.transmission_dir,
            "incomplete-dir-enabled": False,
            "scrape-paused-torrents-enabled": False,
            # Seed on after the download until told to stop.
            "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False,
            "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False,
            "alt-speed-enabled": False,
            # 2 = info: announce failures are in the log.
            "message-level": 2,
        }

    def transmission_env(self):
        """transmission-daemon's environment, and a note for the log."""
        env = dict(os.environ)
        # Nothing outside the temp dir: -g names the config dir, and HOME and
        # XDG_CONFIG_HOME (from which libtransmission takes its defaults)
        # point inside too.
        home = os.path.join(self.tmp, "transmission-home")
        os.makedirs(home)
        env["HOME"] = home
        env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
        # Certificate checks stay on, whatever the caller's environment says.
        env.pop("TR_CURL_SSL_NO_VERIFY", None)
        env.pop("CURL_CA_BUNDLE", None)
        note = "DHT, PEX, LPD, uTP and port mapping off"
        if self.protocol == "https":
            # libtransmission 3.00 hands CURL_CA_BUNDLE to libcurl as
            # CURLOPT_CAINFO (libcurl itself reads no environment): the test
            # certificate becomes its CA file, and certificates stay checked.
            # (Without it every announce fails, "Could not connect to tracker".)
            env["CURL_CA_BUNDLE"] = self.cert_path
            note += ", test certificate as CA"
        return env, note

    def start_transmission(self):
        config_dir = os.path.join(self.tmp, "transmission-config")
        os.makedirs(config_dir)
        os.makedirs(self.transmission_dir)
        peer_port = free_port_both()
        rpc_port = free_port(socket.SOCK_STREAM)
        while rpc_port == peer_port:
            rpc_port = free_port(socket.SOCK_STREAM)
        with open(os.path.join(config_dir, "settings.json"), "w") as f:
            json.dump(self.transmission_settings(peer_port, rpc_port), f, indent=2)
        env, note = self.transmission_env()
        # The settings file says it all; --foreground keeps it our child, and
        # logs go to stderr.
        cmd = ["transmission-daemon", "--foreground", f"--config-dir={config_dir}"]
        log(f"starting transmission-daemon: peer port {peer_port}, RPC port {rpc_port}, {note}")
        self.transmission = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
            env=env,
            start_new_session=True,
        )
        self.transmission_out = LineCollector(self.transmission.stdout)
        self.transmission_rpc = TransmissionRpc(rpc_port)
        end = self.deadline.cap(10.0)
        while True:
            if self.transmission.poll() is not None:
                raise TestFailure(
                    f"transmission-daemon exited early with status {self.transmission.returncode}"
                )
            try:
                version = self.transmission_rpc.call("session-get")["version"]
                break
            except OSError:
                pass
            if time.monotonic() >= end:
                raise TestFailure("transmission-daemon's RPC did not answer within 10 s")
            time.sleep(0.05)
        added = self.transmission_rpc.call(
            "torrent-add", {"filename": self.torrent_path, "paused": False}
        )
        torrent = added.get("torrent-added")
        if torrent is None:
            raise TestFailure(f"transmission-daemon did not add the torrent: {added!r}")
        self.transmission_id = torrent["id"]
        log(f"transmission-daemon {version} has the torrent (id {self.transmission_id})")

    def transmission_torrent(self):
        """The torrent as transmission-daemon's RPC describes it (a few fields)."""
        fields = ["status", "percentDone", "error", "errorString", "peersConnected", "trackerStats"]
        try:
            found = self.transmission_rpc.call(
                "torrent-get", {"ids": [self.transmission_id], "fields": fields}
            )["torrents"]
        except OSError as exc:
            raise TestFailure(f"transmission-daemon's RPC does not answer: {exc}") from None
        if not found:
            raise TestFailure("transmission-daemon no longer has the torrent")
        return found[0]

    @staticmethod
    def describe_transmission_torrent(t):
        """`transmission_torrent()` in one line, for failure messages."""
        trackers = [
            f"{s.get('announce')}: {s.get('lastAnnounceResult')!r}" for s in t.get("trackerStats", [])
        ]
        return (
            f"status={t.get('status')} done={t.get('percentDone')} peers={t.get('peersConnected')} "
            f"error={t.get('error')} {t.get('errorString')!r} trackers={trackers}"
        )

    def check_transmission_announces(self, t):
        """Fails at the first announce that did not succeed: against a tracker on
        127.0.0.1 none may fail, and Transmission would wait 20 s and more before
        it tried again. (Over HTTPS, a certificate it does not trust shows here as
        "Could not connect to tracker".)"""
        for stat in t.get("trackerStats", []):
            if stat.get("hasAnnounced") and not stat.get("lastAnnounceSucceeded"):
                raise TestFailure(
                    f"Transmission's announce to {stat.get('announce')} failed: "
                    f"{stat.get('lastAnnounceResult')!r}"
                )

    def wait_transmission_download(self):
        # "rename-partial-files" (on by default) keeps the name free of a
        # ".part" suffix only once every piece is checked and written.
        target = os.path.join(self.transmission_dir, PAYLOAD_NAME)
        end = self.deadline.cap(self.deadline.remaining())
        while True:
            if self.transmission.poll() is not None:
                raise TestFailure(
                    f"transmission-daemon exited early with status {self.transmission.returncode}"
                )
            torrent = self.transmission_torrent()
            self.check_transmission_announces(torrent)
            if (
                os.path.exists(target)
                and os.path.getsize(target) == PAYLOAD_SIZE
                and sha256_file(target) == self.payload_sha
            ):
                log("transmission-daemon download complete, sha256 matches the payload")
                return
            if time.monotonic() >= end:
                raise TestFailure(
                    f"transmission-daemon did not complete the download within --timeout "
                    f"{self.args.timeout} s (torrent: {self.describe_transmission_torrent(torrent)}, "
                    f"seeder: {self.seeder.status_line()})"
                )
            time.sleep(0.2)

    def stop_transmission_torrent(self):
        # Stopping the torrent, not the daemon: once its session is closing,
        # Transmission 3.00 starts no new HTTP request (tr_webRunImpl checks
        # session->isClosing), so the `stopped` announce of a torrent still
        # running at exit is dropped. (transmission-cli, which exits as soon as
        # its torrent stops, loses it too unless the announcer's once-a-second
        # tick comes first.) A stopped torrent in a running session announces
        # `stopped` on that tick.
        log("stopping the torrent in transmission-daemon (RPC torrent-stop)")
        self.transmission_rpc.call("torrent-stop", {"ids": [self.transmission_id]})

    def stop_transmission(self):
        log("stopping transmission-daemon with SIGTERM")
        self.transmission.send_signal(signal.SIGTERM)
        try:
            rc = self.transmission.wait(timeout=max(1.0, min(20.0, self.deadline.remaining())))
        except subprocess.TimeoutExpired:
            raise TestFailure("transmission-daemon did not exit within 20 s of SIGTERM") from None
        if rc != 0:
            raise TestFailure(f"transmission-daemon exited with status {rc} after SIGTERM (expected 0)")
        log("transmission-daemon exited with status 0")

    # ---- the whole scenario ----

    def run(self):
        log(f"temp dir {self.tmp}")
        self.make_payload()
        if self.protocol == "https":
            self.make_certificate()
        self.start_tracker()
        self.make_torrent()
        if self.protocol == "https":
            self.check_plain_http_refused()

        self.seeder = Seeder(self.cert_path)
        self.seeder.add(self.torrent_path, self.seed_dir)
        log(f"libtorrent {lt.__version__} listening on {LOOPBACK}:{self.seeder.listen_port()}")
        self.seeder.wait_seeding(self.deadline)
        log("libtorrent checked the payload and is seeding")

        # The seeder must be known to the tracker before aria2c asks for peers.
        self.poll_scrape(lambda f: f[0] >= 1, "the libtorrent seeder")

        started = time.monotonic()
        self.start_aria2()
        self.wait_download()
        log(f"transfer took {time.monotonic() - started:.1f}s")

        # Both clients run: libtorrent seeds, aria2c finished (announced
        # `completed`) and seeds on.
        before = self.poll_scrape(
            lambda f: f[0] == 2 and f[1] >= 1 and f[2] == 0,
            "seeders=2 completed>=1 leechers=0",
        )
        log(f"with both clients: seeders={before[0]} completed={before[1]} leechers={before[2]}")

        self.stop_aria2()
        # aria2c exits only after its `stopped` announce was answered, so the
        # drop shows at once. The window stays short on purpose: a long one
        # could be passed by a tracker that ignores `stopped` and merely
        # expires peers after a few announce intervals.
        after = self.poll_scrape(
            lambda f: f[0] == before[0] - 1 and f[2] == 0,
            f"seeders={before[0] - 1} leechers=0 after aria2c stopped",
            seconds=ANNOUNCE_INTERVAL,
        )
        log(f"after aria2c stopped: seeders={after[0]} completed={after[1]} leechers={after[2]}")

        # Transmission downloads while libtorrent is the only other peer the
        # tracker knows, so every byte it gets comes from libtorrent. It takes
        # 10 s or more however fast the link: Transmission 3.00 says which
        # peers it is interested in only on its 10-second rechoke tick
        # (rechokeDownloads), so no piece comes before the first one.
        uploaded = self.seeder.uploaded()
        started = time.monotonic()
        self.start_transmission()
        self.wait_transmission_download()
        log(f"transfer took {time.monotonic() - started:.1f}s")
        self.seeder.wait_uploaded(uploaded + PAYLOAD_SIZE, self.deadline)
        log(f"libtorrent uploaded {self.seeder.uploaded() - uploaded} payload bytes meanwhile")
        # Its `started` announce (left > 0) stored it as a leecher, so its
        # `completed` counts: exactly one more download than before.
        with_tr = self.poll_scrape(
            lambda f: f[0] == after[0] + 1 and f[1] == after[1] + 1 and f[2] == 0,
            f"seeders={after[0] + 1} completed={after[1] + 1} leechers=0 with Transmission",
        )
        log(f"with Transmission: seeders={with_tr[0]} completed={with_tr[1]} leechers={with_tr[2]}")

        self.stop_transmission_torrent()
        # The `stopped` announce goes out within a second: the same short
        # window as for aria2c.
        gone = self.poll_scrape(
            lambda f: f[0] == after[0] and f[1] == with_tr[1] and f[2] == 0,
            f"seeders={after[0]} completed={with_tr[1]} leechers=0 after Transmission stopped",
            seconds=ANNOUNCE_INTERVAL,
        )
        log(f"after Transmission stopped: seeders={gone[0]} completed={gone[1]} leechers={gone[2]}")
        self.stop_transmission()

        log("stopping libtorrent")
        self.seeder.close()
        final = self.scrape()
        log(
            f"after libtorrent stopped (not asserted): seeders={final[0]} "
            f"completed={final[1]} leechers={final[2]}"
        )

        self.stop_tracker()

    # ---- reporting and cleanup ----

    def dump_logs(self):
        def section(title, lines):
            print(f"----- {title} ({len(lines)} lines) -----")
            for line in lines:
                print(line)

        if self.tracker_err is not None:
            section("tracker stderr", self.tracker_err.snapshot())
        if self.tracker_out is not None:
            section("tracker stdout", self.tracker_out.snapshot())
        if self.aria2_out is not None:
            section("aria2c output", self.aria2_out.snapshot())
        if os.path.exists(self.aria2_log):
            with open(self.aria2_log, errors="replace") as f:
                lines = f.read().splitlines()
            section("aria2c log (last 200 lines)", lines[-200:])
        if self.transmission_out is not None:
            section("transmission-daemon output (last 200 lines)", self.transmission_out.snapshot()[-200:])
        if self.seeder is not None:
            section("libtorrent alerts (last 100)", self.seeder.alerts[-100:])
        sys.stdout.flush()

    def cleanup_transmission(self):
        """Ends transmission-daemon if it still runs, and removes the one file
        it keeps outside the temp dir."""
        if self.transmission is not None and self.transmission.poll() is None:
            # SIGTERM first: only a daemon that closes its session removes its
            # session-id file.
            self.transmission.terminate()
            try:
                self.transmission.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.transmission.kill()
                try:
                    self.transmission.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # Transmission 3.00 creates /tmp/tr_session_id_<RPC session id> (a
        # fixed directory: TMPDIR is not read) when its RPC first answers, and
        # removes it only on a clean exit.
        session_id = self.transmission_rpc.session_id if self.transmission_rpc else None
        if session_id and re.fullmatch(r"[0-9A-Za-z]+", session_id):
            try:
                os.remove(os.path.join(TRANSMISSION_SESSION_ID_DIR, f"tr_session_id_{session_id}"))
            except FileNotFoundError:
                pass

    def cleanup(self):
        self.cleanup_transmission()
        for name in ("aria2", "tracker"):
            proc = getattr(self, name)
            if proc is not None and proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        if self.seeder is not None:
            try:
                self.seeder.close()
            except Exception as exc:  # noqa: BLE001 - cleanup must go on
                print(f"closing libtorrent failed: {exc}")
        for collector in (self.tracker_err, self.tracker_out, self.aria2_out, self.transmission_out):
            if collector is not None:
                collector.thread.join(timeout=2)
        if self.args.keep_tmp:
            print(f"kept temp dir {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", required=True, choices=PROTOCOLS, help="the tracker's protocol")
    ap.add_argument(
        "--tracker-bin",
        required=True,
        help="path of the tracker binary (tracker_udp, or tracker_http for http and https)",
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="overall time budget in seconds")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir for inspection")
    ap.add_argument("--verbose", action="store_true", help="print the logs on success too")
    args = ap.parse_args()
    args.tracker_bin = os.path.abspath(args.tracker_bin)
    summary = f"e2e {args.protocol} real clients"
    if not os.access(args.tracker_bin, os.X_OK):
        print(f"tracker binary not found or not executable: {args.tracker_bin}")
        print(f"{summary}: 0 passed, 1 failed")
        return 1
    for tool in ("aria2c", "transmission-daemon"):
        if shutil.which(tool) is None:
            print(f"{tool} not found; run scripts/install-test-deps.sh")
            print(f"{summary}: 0 passed, 1 failed")
            return 1

    return run_and_report(Run(args), summary, args)


def run_and_report(run, summary, args):
    """Runs `run.run()` under a watchdog of `args.timeout` + 60 s, cleans up whatever
    happens (SIGTERM, e.g. from CI, and the watchdog go through the cleanup too), dumps
    the logs on failure or with --verbose, and prints the one-line summary; returns the
    exit status."""

    def on_signal(signum, _frame):
        raise TestFailure(f"interrupted by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(args.timeout) + 60)

    failed = None
    try:
        run.run()
    except TestFailure as exc:
        failed = str(exc)
    except Exception as exc:  # noqa: BLE001 - report any crash as a failure
        import traceback

        traceback.print_exc()
        failed = f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        signal.alarm(0)
        if failed is not None:
            print(f"FAILED: {failed}")
        if failed is not None or args.verbose:
            run.dump_logs()
        run.cleanup()
    log(f"total {time.monotonic() - START:.1f}s")
    if failed is None:
        print(f"{summary}: 1 passed, 0 failed")
        return 0
    print(f"{summary}: 0 passed, 1 failed")
    return 1


if __name__ == "__main__":
    sys.exit(main())
