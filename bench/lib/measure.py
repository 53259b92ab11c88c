"""One measured step against a running Switchboard: sipp load, Switchboard's
CPU and peak RSS, and the CDRs it wrote for the step."""
import fcntl
import gzip
import os
import shutil
import subprocess
import time

import latency
import procfs
import sippstep

# The peer harness takes this lock around each of its steps: holding it
# keeps our steps and its Kamailio steps from sharing the CPUs.
LOCK_PATH = "/tmp/sip-bench.lock"


class BenchLock:
    def __init__(self, max_wait=1800):
        self.max_wait = max_wait
        self.f = None

    def __enter__(self):
        self.f = open(LOCK_PATH, "a")
        deadline = time.monotonic() + self.max_wait
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{LOCK_PATH} held by another benchmark for {self.max_wait}s")
                time.sleep(1)

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def wait_quiet(max_busy=0.15, max_wait=120):
    """Waits (bounded) until the whole machine is below `max_busy` cores
    busy for 2 s in a row; returns the busy share seen last and whether it
    got quiet. Tick based (/proc/stat): a rough check for foreign load."""
    t_end = time.monotonic() + max_wait
    quiet = 0
    prev, pt = procfs.machine_busy_seconds(), time.monotonic()
    busy = 0.0
    while time.monotonic() < t_end:
        time.sleep(1)
        cur, now = procfs.machine_busy_seconds(), time.monotonic()
        busy = (cur - prev) / (now - pt)
        prev, pt = cur, now
        quiet = quiet + 1 if busy < max_busy else 0
        if quiet >= 2:
            return busy, True
    return busy, False


class CdrCounter:
    """Counts the CDRs written since the last count, following the
    `/v1/cdrs` cursor (which never skips nor repeats a record)."""

    def __init__(self, api):
        self.api = api
        _, _, self.cursor = api.walk("/v1/cdrs")

    def count_new(self, expected, settle=30):
        """Pages from the cursor until `expected` new CDRs are seen or no
        more come for 3 s (bounded by `settle` s); returns the count."""
        seen, idle, t_end = 0, 0, time.monotonic() + settle
        while True:
            n, _, cur = self.api.walk("/v1/cdrs", cursor=self.cursor)
            if cur:
                self.cursor = cur
            seen += n
            idle = 0 if n else idle + 1
            if seen >= expected or idle >= 3 or time.monotonic() > t_end:
                return seen
            time.sleep(1)


def compress_big(d, over=2 << 20):
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not name.endswith(".gz") and name != "perf.data" and os.path.getsize(p) > over:
            with open(p, "rb") as src, gzip.open(p + ".gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.remove(p)


def start_perf(pid, outdir, seconds):
    """`perf record` of Switchboard (cpu-clock: no hardware counters in a
    VM; DWARF call graphs: the release build has debug info but no frame
    pointers) for `seconds`; its own CPU is not in Switchboard's figures."""
    if not shutil.which("perf"):
        return None
    cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384",
           "-p", str(pid), "-o", os.path.join(outdir, "perf.data"), "--", "sleep", str(seconds)]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(outdir, "perf.log"), "wb"))


def perf_report(outdir):
    """Flat profile (self time per symbol) of the step's perf.data."""
    data = os.path.join(outdir, "perf.data")
    with open(os.path.join(outdir, "perf.txt"), "wb") as f:
        subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol",
                        "--stdio", "-g", "none", "--percent-limit", "0.5"],
                       stdout=f, stderr=subprocess.DEVNULL, timeout=600)


def per_call(after, before, calls):
    if not after or not before or not calls:
        return None
    return {k: round((after[k] - before[k]) / calls, 2) for k in after if k in before}


def run_step(sb, cdrs, outdir, rate, duration, pause_ms, ports, nice=None, perf=False, db=None,
             capture=True):
    """One step of `rate` calls/s for `duration` s; returns its figures.
    With `perf`, Switchboard is profiled from 2 s into the step for up to
    8 s (perf.data in `outdir`). With `capture`, the SIP packets of a
    window from 3 s in are captured for the precise setup latency."""
    # sipp's files of an earlier run into the same --out would be counted
    # with this step's (twice the calls attempted, twice the rate).
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    calls = rate * duration
    sip_port = int(sb.sip.rsplit(":", 1)[1])
    limit = max(1000, rate * (pause_ms // 1000 + 5))
    uac_timeout = duration * 2 + pause_ms // 1000 + 30
    fds = limit * 2 + 1000
    with BenchLock():
        waited = procfs.wait_idle(sb.pid, max_wait=60)
        busy_before, quiet = wait_quiet()
        procfs.reset_peak_rss(sb.pid)
        ctx0 = procfs.ctx_switches(sb.pid)
        rows0, act0 = (db.row_counts(), db.activity()) if db else (None, None)
        pg_pids = db.backend_pids() if db else []
        pg0 = sum(procfs.cpu_seconds(p) or 0 for p in pg_pids)
        tasks0 = procfs.task_runtimes()
        threads0 = procfs.thread_runtimes(sb.pid)
        cpu0, t0 = procfs.cpu_seconds(sb.pid), time.monotonic()
        drops0 = procfs.udp_rcvbuf_errors()
        sampler = procfs.Sampler(sb.pid, interval=1.0, max_seconds=uac_timeout + 120).start()
        uas = sippstep.start_uas(outdir, ports["uas"], calls, uac_timeout + 10, nice, fds)
        uac = sippstep.start_uac(outdir, sb.sip, ports["uac"], rate, calls, limit, pause_ms,
                                 uac_timeout, nice, fds)
        t_start = time.monotonic()
        prof = cap = None
        if perf:
            time.sleep(2)
            prof = start_perf(sb.pid, outdir, max(1, min(8, duration - 3)))
        if capture and duration >= 5:
            # a window of steady state, at most ~4000 calls to keep it small
            time.sleep(max(0.0, t_start + 3 - time.monotonic()))
            cap = latency.start_capture(os.path.join(outdir, "setup.pcap"),
                                        (sip_port, ports["uac"], ports["uas"]))
            time.sleep(max(0.5, min(2.0, 4000 / rate)))
            if cap:
                latency.stop_capture(cap)
        uac.wait(t_start + uac_timeout + 15)
        if prof:
            prof.wait(timeout=120)
        t_uac = time.monotonic()
        uas.wait(time.monotonic() + 8)
        idle_after = procfs.wait_idle(sb.pid, max_wait=30)
        sampler.stop()
        cpu1, t1 = procfs.cpu_seconds(sb.pid), time.monotonic()
        tasks1 = procfs.task_runtimes()
        threads1 = procfs.thread_runtimes(sb.pid)
        pg1 = sum(procfs.cpu_seconds(p) or 0 for p in pg_pids)
        hwm = procfs.status_kib(sb.pid, "VmHWM")
        ctx1 = procfs.ctx_switches(sb.pid)
        drops1 = procfs.udp_rcvbuf_errors()
    r = sippstep.summarize(outdir, rate, calls)
    r["cdrs"] = cdrs.count_new(r["ok"])
    if db:
        # after the CDR count: every write of the step is in by then
        r["db_rows_per_call"] = per_call(db.row_counts(), rows0, r["ok"])
        r["db_activity_per_call"] = per_call(db.activity(), act0, r["ok"])
    if ctx0 and ctx1 and r["ok"]:
        r["ctx_switches_per_call"] = round((sum(ctx1) - sum(ctx0)) / r["ok"], 1)
    if r["ok"]:
        # by thread name; a thread that came or went within the step counts
        # only for the part both readings saw
        by = {k: round((v - threads0[k]) * 1e6 / r["ok"], 1)
              for k, v in threads1.items() if k in threads0}
        r["cpu_us_per_call_by_thread"] = by
        r["sip_us_per_call"] = by.get("sip")
        r["sqlite_us_per_call"] = by.get("sqlx-sqlite-wor")
    sb_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    wall = t1 - t0
    # everything else that ran meanwhile (sipp is gone by t1, so not in it)
    other = procfs.runtime_delta(tasks0, tasks1, [sb.pid, os.getpid()] + pg_pids)
    r.update({
        "duration": duration, "pause_ms": pause_ms, "uac_exit": uac.code,
        "wall_s": round(t_uac - t_start, 2),
        "sb_cpu_s": sb_cpu,
        "cpu_us_per_call": sb_cpu * 1e6 / r["ok"] if sb_cpu is not None and r["ok"] else None,
        "sb_cpu_pct": 100.0 * sb_cpu / (t_uac - t_start) if sb_cpu is not None else None,
        "peak_rss_kib": hwm, "sampled_max_rss_kib": sampler.max_rss(),
        "uac_cpu_pct": 100.0 * (uac.cpu_seconds() or 0) / (t_uac - t_start),
        "uas_cpu_pct": 100.0 * (uas.cpu_seconds() or 0) / (t_uac - t_start),
        "other_pct": 100.0 * other / wall,
        "udp_drops": (drops1 - drops0) if drops0 is not None and drops1 is not None else None,
        "pg_cpu_s": (pg1 - pg0) if pg_pids else None,
        "pg_us_per_call": (pg1 - pg0) * 1e6 / r["ok"] if pg_pids and r["ok"] else None,
        "quiet_before": quiet, "busy_before_pct": 100.0 * busy_before,
        "idle_wait_before_s": waited, "idle_wait_after_s": idle_after,
    })
    # steady state only (harness-style relay_us): CPU share while the
    # caller was offering calls, divided by the offered rate
    steady = sampler.cpu_between(t_start + 2, t_start + duration)
    r["cpu_us_steady"] = steady * 1e6 / rate if steady is not None else None
    r["uac_command"], r["uas_command"] = uac.command, uas.command
    if prof:
        perf_report(outdir)
    pcap = os.path.join(outdir, "setup.pcap")
    if cap and os.path.exists(pcap):
        r["latency"] = latency.summary(pcap, sip_port, ports["uac"], ports["uas"])
        for k in ("setup", "added"):
            for q in (50, 99):
                r[f"{k}_us_p{q}"] = (r["latency"][f"{k}_p{q}"] or 0) * 1000 \
                    if r["latency"][f"{k}_p{q}"] is not None else None
        os.remove(pcap)
    compress_big(outdir)
    return r
