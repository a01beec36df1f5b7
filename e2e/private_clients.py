#!/usr/bin/python3
"""End-to-end test of the HTTP tracker's private mode with real BitTorrent clients.

tracker_http runs in private mode with a passkey file of two users' passkeys, A
and B, and its accounting in a SQLite file (`accounting.url = sqlite://DIR/acc.db`,
`flush_interval_secs = 1`). A libtorrent session seeds a random payload through
`http://127.0.0.1:PORT/A/announce`; aria2c downloads it through
`http://127.0.0.1:PORT/B/announce` (two .torrent files, one per user, with the
same info hash, as a private site hands out). Each finds the other only through
the tracker (DHT, PEX, local peer discovery and port mapping are off, and the
torrent is private). All traffic stays on 127.0.0.1. Run with Debian's
interpreter, which can import Debian's python3-libtorrent:

    /usr/bin/python3 e2e/private_clients.py --tracker-bin target/release/tracker_http

The test checks:
  * a scrape without a passkey is refused with "missing passkey", and one with
    a passkey not in the file with "unknown passkey";
  * the payload arrives at aria2c intact (SHA-256);
  * while both clients run, a scrape through /A/scrape reports 2 seeders, at
    least one completed download and no leechers;
  * after aria2c is stopped (SIGINT), the libtorrent torrent removed (both then
    announce `stopped`) and the tracker stopped with SIGTERM (exit status 0),
    shoal_credits, read with Python's sqlite3, credits each user with the
    bytes moved, within what the clients reported: B downloaded at least the
    payload and at most what aria2c last announced (plus a piece); A uploaded at
    least the payload and at most what libtorrent counted (plus a piece); A
    downloaded nothing; B's completion is recorded and A's is not.

The helpers (clients, scrapes, logs) are real_clients.py's.
"""

import argparse
import os
import random
import re
import shutil
import sqlite3
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_clients as rc  # noqa: E402 - exits 2 when libtorrent cannot be imported
from real_clients import LOOPBACK, PAYLOAD_SIZE, PIECE_SIZE, TestFailure, log, lt  # noqa: E402

# What a client's counters and the tracker's credit may differ by: a piece in flight
# when a counter was read.
MARGIN = PIECE_SIZE
ARIA2_DOWNLOADED_RE = re.compile(r"[?&]downloaded=(\d+)")


def new_passkey():
    """A random passkey: 32 characters of 0-9, A-Z, a-z."""
    return "".join(random.choices(string.ascii_letters + string.digits, k=32))


class PrivateRun(rc.Run):
    """real_clients.py's run over HTTP, with two users and the accounting checked."""

    def __init__(self, args):
        args.protocol = "http"
        super().__init__(args)
        self.passkey_a = new_passkey()
        self.passkey_b = new_passkey()
        self.db_path = os.path.join(self.tmp, "acc.db")
        self.torrent_b = None

    # ---- tracker ----

    def tracker_config(self):
        passkeys = os.path.join(self.tmp, "passkeys.txt")
        with open(passkeys, "w") as f:
            f.write(f"# users\n{self.passkey_a} 1  # A: libtorrent\n{self.passkey_b} 2  # B: aria2c\n")
        return (
            super().tracker_config()
            + "[private]\n"
            + "enabled = true\n"
            + f"passkeys_path = {rc.toml_string(passkeys)}\n"
            + f"site_cache_path = {rc.toml_string(os.path.join(self.tmp, 'site.cache'))}\n"
            + "[accounting]\n"
            + f"url = {rc.toml_string('sqlite://' + self.db_path)}\n"
            + "flush_interval_secs = 1\n"
        )

    def announce_url(self, passkey):
        return f"http://{LOOPBACK}:{self.port}/{passkey}/announce"

    def scrape(self, passkey=None):
        """User A's scrape, or `passkey`'s; Run.poll_scrape polls this."""
        return rc.scrape_http(self.port, self.info_hash, passkey=passkey or self.passkey_a)

    def check_scrape_refused(self, passkey, reason):
        """A scrape with `passkey` (None: the plain path) must get the failure `reason`."""
        try:
            if passkey is None:
                rc.scrape_http(self.port, self.info_hash)
            else:
                rc.scrape_http(self.port, self.info_hash, passkey=passkey)
        except TestFailure as exc:
            if reason not in str(exc):
                raise TestFailure(f"scrape with passkey {passkey!r}: expected {reason!r}, got: {exc}")
            log(f"scrape with passkey {passkey!r} refused: {reason}")
            return
        raise TestFailure(f"a scrape with passkey {passkey!r} was answered")

    # ---- torrents: one per user ----

    def make_torrent(self):
        # The announce URL is outside the info dictionary: both users' torrents have
        # one info hash, as on a private site.
        self.torrent_path = os.path.join(self.tmp, "payload-a.torrent")
        self.torrent_b = os.path.join(self.tmp, "payload-b.torrent")
        info_a = self.write_torrent(self.announce_url(self.passkey_a), self.torrent_path)
        self.info_hash = info_a.info_hashes().v1.to_bytes()
        info_b = self.write_torrent(self.announce_url(self.passkey_b), self.torrent_b)
        hash_b = info_b.info_hashes().v1.to_bytes()
        if hash_b != self.info_hash:
            raise TestFailure("the two users' torrents have different info hashes")
        log(
            f"torrents: info hash {self.info_hash.hex()}, private, "
            f"A {self.announce_url(self.passkey_a)}, B {self.announce_url(self.passkey_b)}"
        )

    def start_aria2(self):
        # aria2c is user B: Run.start_aria2 adds self.torrent_path.
        mine, self.torrent_path = self.torrent_path, self.torrent_b
        try:
            super().start_aria2()
        finally:
            self.torrent_path = mine

    def aria2_reported_downloaded(self):
        """The largest `downloaded` aria2c put in an announce (its log has each request
        line: GET /B/announce?...&downloaded=N&...)."""
        target = f"/{self.passkey_b}/announce?"
        with open(self.aria2_log, errors="replace") as f:
            lines = [line for line in f if target in line]
        values = [int(v) for line in lines for v in ARIA2_DOWNLOADED_RE.findall(line)]
        if not values:
            raise TestFailure("aria2c's log shows no announce with a downloaded= parameter")
        return max(values)

    # ---- the accounting database ----

    def user_torrents(self):
        """shoal_credits' rows of the torrent, by passkey (user 1 is A, user 2 is B,
        as the passkey file says; another user id is returned as itself)."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute(
                "SELECT user_id, uploaded, downloaded, completed_at FROM shoal_credits "
                "WHERE info_hash = ?",
                (self.info_hash,),
            ).fetchall()
        finally:
            db.close()
        users = {1: self.passkey_a, 2: self.passkey_b}
        return {
            users.get(user, user): {"uploaded": up, "downloaded": down, "completed_at": done}
            for user, up, down, done in rows
        }

    def wait_credit(self, passkey, field, at_least, seconds=20.0):
        """Waits until `passkey`'s row has `field` >= `at_least` (libtorrent's next
        announce and the next commit); returns the rows."""
        end = self.deadline.cap(seconds)
        while True:
            try:
                rows = self.user_torrents()
            except sqlite3.Error as exc:
                rows, problem = {}, exc
            else:
                problem = None
            value = rows.get(passkey, {}).get(field, 0)
            if value >= at_least:
                return rows
            if time.monotonic() >= end:
                raise TestFailure(
                    f"shoal_credits never credited {field} >= {at_least} "
                    f"(last: {rows}, {problem})"
                )
            time.sleep(0.5)

    def check_accounting(self, aria2_downloaded, libtorrent_uploaded):
        rows = self.user_torrents()
        log(f"shoal_credits: {rows}")
        a = rows.get(self.passkey_a)
        b = rows.get(self.passkey_b)
        if a is None or b is None:
            raise TestFailure(f"shoal_credits lacks a user's row: {rows}")
        if set(rows) != {self.passkey_a, self.passkey_b}:
            raise TestFailure(f"shoal_credits has rows of other passkeys: {rows}")
        checks = [
            (
                PAYLOAD_SIZE <= b["downloaded"] <= aria2_downloaded + MARGIN,
                f"B downloaded {b['downloaded']}: expected between the payload ({PAYLOAD_SIZE}) "
                f"and what aria2c announced ({aria2_downloaded}) plus {MARGIN}",
            ),
            (
                PAYLOAD_SIZE <= a["uploaded"] <= libtorrent_uploaded + MARGIN,
                f"A uploaded {a['uploaded']}: expected between the payload ({PAYLOAD_SIZE}) "
                f"and what libtorrent counted ({libtorrent_uploaded}) plus {MARGIN}",
            ),
            (a["downloaded"] == 0, f"A (the seeder) downloaded {a['downloaded']}, expected 0"),
            (b["completed_at"] is not None, "B's completion is not recorded"),
            (a["completed_at"] is None, "A, a seeder from the start, has a completion"),
        ]
        failed = [message for ok, message in checks if not ok]
        if failed:
            raise TestFailure("; ".join(failed))
        log(
            f"credited: A uploaded {a['uploaded']} (libtorrent counted {libtorrent_uploaded}), "
            f"B downloaded {b['downloaded']} (aria2c announced {aria2_downloaded}), "
            "B completed, A downloaded 0"
        )

    # ---- the whole scenario ----

    def run(self):
        log(f"temp dir {self.tmp}")
        log(f"passkeys: A {self.passkey_a} (libtorrent), B {self.passkey_b} (aria2c)")
        self.make_payload()
        self.start_tracker()
        self.make_torrent()
        self.check_scrape_refused(None, "missing passkey")
        self.check_scrape_refused(new_passkey(), "unknown passkey")

        self.seeder = rc.Seeder()
        self.seeder.add(self.torrent_path, self.seed_dir)
        log(f"libtorrent {lt.__version__} listening on {LOOPBACK}:{self.seeder.listen_port()}")
        self.seeder.wait_seeding(self.deadline)
        log("libtorrent checked the payload and is seeding")
        self.poll_scrape(lambda f: f[0] >= 1, "the libtorrent seeder")

        started = time.monotonic()
        self.start_aria2()
        self.wait_download()
        log(f"transfer took {time.monotonic() - started:.1f}s")
        both = self.poll_scrape(
            lambda f: f[0] == 2 and f[1] >= 1 and f[2] == 0,
            "seeders=2 completed>=1 leechers=0",
        )
        log(f"with both clients: seeders={both[0]} completed={both[1]} leechers={both[2]}")

        self.stop_aria2()
        aria2_downloaded = self.aria2_reported_downloaded()
        log(f"aria2c's last announces said downloaded={aria2_downloaded}")

        # libtorrent re-announces every interval while it seeds (see Seeder): its
        # upload is credited before it stops, whether or not its `stopped` announce
        # makes it out of a closing session.
        self.seeder.wait_uploaded(PAYLOAD_SIZE, self.deadline)
        self.wait_credit(self.passkey_a, "uploaded", PAYLOAD_SIZE)
        libtorrent_uploaded = self.seeder.uploaded()
        log(f"libtorrent counted {libtorrent_uploaded} payload bytes uploaded; pausing its torrent")
        # A paused torrent announces `stopped` while its session lives on.
        self.seeder.handle.pause()
        self.poll_scrape(lambda f: f[0] == 0, "no seeder after both stopped", seconds=rc.ANNOUNCE_INTERVAL)
        self.seeder.close()

        self.stop_tracker()
        self.check_accounting(aria2_downloaded, libtorrent_uploaded)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracker-bin", required=True, help="path of the tracker_http binary")
    ap.add_argument("--timeout", type=float, default=120.0, help="overall time budget in seconds")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir for inspection")
    ap.add_argument("--verbose", action="store_true", help="print the logs on success too")
    args = ap.parse_args()
    args.tracker_bin = os.path.abspath(args.tracker_bin)
    summary = "e2e private http real clients"
    if not os.access(args.tracker_bin, os.X_OK):
        print(f"tracker binary not found or not executable: {args.tracker_bin}")
        print(f"{summary}: 0 passed, 1 failed")
        return 1
    if shutil.which("aria2c") is None:
        print("aria2c not found; run scripts/install-test-deps.sh")
        print(f"{summary}: 0 passed, 1 failed")
        return 1

    return rc.run_and_report(PrivateRun(args), summary, args)


if __name__ == "__main__":
    sys.exit(main())
