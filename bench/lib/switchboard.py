"""Builds, starts, provisions and stops the Switchboard under test.

One Switchboard per benchmark run, on loopback, with its own database: a
SQLite file in the run's temporary folder, or a PostgreSQL database created
for the run and dropped at the end. Configuration goes through the
environment (README, "Running it").
"""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_PASSWORD = "bench-admin-password"
from sippstep import CLIENT_PASSWORD, CLIENT_USER, SERVICE_USER


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def build():
    """`cargo build --release`; returns the binary's path."""
    print("building: cargo build --release", flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    return os.path.join(target_dir(), "release", "switchboard")


def _psql(admin_url, sql):
    subprocess.run(["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)


class Database:
    """The run's database: `url` for Switchboard, `drop()` at the end."""

    def __init__(self, engine, workdir, pg_url):
        self.engine = engine
        self.name = None
        self.pg_url = pg_url.rstrip("/")
        if engine == "sqlite":
            self.url = "sqlite://" + os.path.join(workdir, "switchboard.db")
        elif engine == "postgres":
            self.name = "switchboard_bench_%d_%d" % (os.getpid(), int(time.time()))
            _psql(self.pg_url + "/postgres", f'CREATE DATABASE "{self.name}"')
            self.url = f"{self.pg_url}/{self.name}"
        else:
            raise ValueError(f"unknown database engine {engine}")

    TABLES = ("sessions", "session_legs", "session_segments", "session_events", "cdrs", "charges")

    def _query(self, sql):
        """Rows of one query through the engine's own CLI (psql, sqlite3),
        as lists of strings; None when the CLI is missing or fails."""
        if self.engine == "postgres":
            cmd = ["psql", self.url, "-At", "-F", "|", "-c", sql]
        else:
            cmd = ["sqlite3", "-readonly", self.url[len("sqlite://"):], sql]
        try:
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return [line.split("|") for line in out.splitlines() if line]

    def row_counts(self):
        """{table: rows} of the tables the relay and billing write."""
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in self.TABLES)
        rows = self._query(sql)
        return {r[0]: int(r[1]) for r in rows} if rows else None

    def activity(self):
        """PostgreSQL's counters for this database (commits, rows written
        and read), None on SQLite."""
        if self.engine != "postgres":
            return None
        rows = self._query("SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, "
                           "tup_deleted, tup_fetched, tup_returned FROM pg_stat_database "
                           f"WHERE datname = '{self.name}'")
        if not rows:
            return None
        keys = ("commits", "rollbacks", "inserted", "updated", "deleted", "fetched", "returned")
        return dict(zip(keys, (int(x) for x in rows[0])))

    def backend_pids(self):
        """The PostgreSQL server processes serving this database (its CPU
        is part of the cost of a call); [] on SQLite."""
        if self.engine != "postgres":
            return []
        rows = self._query(f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.name}' "
                           "AND pid <> pg_backend_pid()")
        return [int(r[0]) for r in rows or []]

    def drop(self):
        if self.name:
            _psql(self.pg_url + "/postgres", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.name = None


class Api:
    """A minimal REST client (stdlib only) with an admin token."""

    def __init__(self, base):
        self.base = base
        self.token = None

    def login(self):
        body = self.call("POST", "/v1/auth/token",
                         {"username": "admin", "password": ADMIN_PASSWORD}, auth=False)
        self.token = body["access_token"]

    def call(self, method, path, body=None, auth=True, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if auth:
            req.add_header("authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path}: HTTP {e.code} {detail}") from None
        return json.loads(raw) if raw else None

    def timed_get(self, path):
        """(seconds, body) of one GET."""
        t0 = time.perf_counter()
        body = self.call("GET", path)
        return time.perf_counter() - t0, body

    def provision(self, uas_port):
        """Tariff, client, app server, service and rule for the benchmark;
        returns their ids."""
        tariff = self.call("POST", "/v1/tariffs", {
            "name": "bench", "currency": "EUR", "setup_fee": "0.01",
            "price_per_minute": "0.0125", "minimum_seconds": 1, "increment_seconds": 1})
        client = self.call("POST", "/v1/clients", {
            "username": CLIENT_USER, "password": CLIENT_PASSWORD, "display_name": "sipp caller"})
        app_server = self.call("POST", "/v1/app-servers", {
            "name": "sipp-uas", "uri": f"sip:127.0.0.1:{uas_port};transport=udp", "priority": 10})
        service = self.call("POST", "/v1/services", {
            "name": "bench", "app_server_ids": [app_server["id"]], "strategy": "failover",
            "tariff_id": tariff["id"]})
        rule = self.call("POST", "/v1/rules", {
            "name": "bench", "priority": 10, "match": {"request_uri_user": SERVICE_USER},
            "service_id": service["id"]})
        return {"tariff": tariff["id"], "client": client["id"], "app_server": app_server["id"],
                "service": service["id"], "rule": rule["id"]}

    def walk(self, path, limit=500, cursor=None, max_pages=100000):
        """Follows `next_cursor` from `path` (with a query string or not)
        and `cursor` until the end; returns (items seen, pages, last
        cursor)."""
        sep = "&" if "?" in path else "?"
        n, pages = 0, 0
        while pages < max_pages:
            q = f"{path}{sep}limit={limit}"
            if cursor:
                q += "&cursor=" + urllib.parse.quote(cursor)
            body = self.call("GET", q)
            pages += 1
            n += len(body["items"])
            nxt = body.get("next_cursor")
            more = body.get("has_more", nxt is not None and len(body["items"]) > 0)
            if nxt:
                cursor = nxt
            if not more or not body["items"]:
                break
        return n, pages, cursor


class Switchboard:
    """A running Switchboard: `pid`, `api`, `sip` ("127.0.0.1:port")."""

    def __init__(self, binary, workdir, db, sip_port, http_port, extra_env=None, nice=None,
                 cpus=None):
        self.workdir = workdir
        self.sip = f"127.0.0.1:{sip_port}"
        self.api = Api(f"http://127.0.0.1:{http_port}")
        env = dict(os.environ)
        env.update({
            "SWITCHBOARD_SIP_LISTEN": self.sip,
            "SWITCHBOARD_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "DATABASE_URL": db.url,
            "SWITCHBOARD_DOMAIN": "127.0.0.1",
            "SWITCHBOARD_JWT_SECRET": "bench-secret-bench-secret-bench-secret-0123",
            "SWITCHBOARD_ADMIN_USER": "admin",
            "SWITCHBOARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # sipp 3.6 answers only the first challenge, and MD5 only
            "SWITCHBOARD_DIGEST_ALGORITHMS": "MD5",
            # probes would hit the sipp UAS, which is not there between steps
            "SWITCHBOARD_AS_PROBE_INTERVAL_SECONDS": "3600",
            "SWITCHBOARD_NODE_NAME": "bench",
            "SWITCHBOARD_SPOOL_DIR": os.path.join(workdir, "spool"),
            "RUST_LOG": "warn",
        })
        env.update(extra_env or {})
        cmd = [binary, "serve"]
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        if nice:
            cmd = ["nice", "-n", str(nice)] + cmd
        self.log_path = os.path.join(workdir, "switchboard.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self._real_pid()
        self._wait_ready()
        self.api.login()

    def _real_pid(self):
        """The switchboard process itself (nice/taskset exec it in place)."""
        return self.proc.pid

    def _wait_ready(self, within=60):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as f:
                    tail = f.read()[-2000:]
                raise RuntimeError(f"switchboard exited ({self.proc.returncode}):\n{tail}")
            try:
                with urllib.request.urlopen(self.api.base + "/openapi.json", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"switchboard not ready after {within}s, see {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def make_workdir(results_dir):
    d = os.path.join(results_dir, "switchboard")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d
