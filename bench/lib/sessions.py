"""bench/sessions.sh N: the cost of state. Holds N established sessions
(sipp caller with a long hold) through Switchboard, then reports its RSS
per session and the latency of `GET /v1/sessions?state=active` (and of the
`established` listing that the store actually knows) at that size."""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

import measure
import procfs
import sippstep
import switchboard


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/sessions.sh", description=__doc__)
    ap.add_argument("sessions", type=int, help="concurrent sessions to hold (N)")
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--rate", type=int, default=1000, help="calls/s while ramping up (1000)")
    ap.add_argument("--settle", type=int, default=150,
                    help="seconds the sessions are held after the ramp, for the measurements (150)")
    ap.add_argument("--samples", type=int, default=20, help="timed requests per query (20)")
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--nice", type=int, default=int(os.environ.get("BENCH_NICE", "0")) or None)
    ap.add_argument("--sip-port", type=int, default=5090)
    ap.add_argument("--http-port", type=int, default=18090)
    ap.add_argument("--uas-port", type=int, default=5094)
    ap.add_argument("--uac-port", type=int, default=5092)
    ap.add_argument("--binary")
    ap.add_argument("--out")
    return ap.parse_args(argv)


def last_stat(path):
    rows = sippstep.read_stf(path)
    return rows[-1] if rows else {}


def time_queries(api, samples):
    """p50/max latency (ms) and items of the listings, `samples` each."""
    out = {}
    for q in ("state=active", "state=established", "state=established&limit=500"):
        times, items = [], None
        for _ in range(samples):
            dt, body = api.timed_get("/v1/sessions?" + q)
            times.append(dt * 1000)
            items = len(body["items"])
        times.sort()
        out[q] = {"p50_ms": round(sippstep.percentile(times, 50), 2),
                  "max_ms": round(times[-1], 2), "items": items}
    t0 = time.perf_counter()
    n, pages, _ = api.walk("/v1/sessions?state=established", limit=500)
    out["walk established (limit=500)"] = {"total_s": round(time.perf_counter() - t0, 2),
                                           "items": n, "pages": pages}
    return out


def wait_published(api, held, max_wait=90):
    """Walks the established sessions until all `held` are there or the
    count stops growing (bounded); returns (count, seconds waited)."""
    t0 = time.monotonic()
    last = -1
    while True:
        n, _, _ = api.walk("/v1/sessions?state=established", limit=500)
        if n >= held or n == last or time.monotonic() - t0 > max_wait:
            return n, round(time.monotonic() - t0, 1)
        last = n
        time.sleep(2)


def states(api):
    """Sessions per state (walked), for the states other than established."""
    return {st: api.walk(f"/v1/sessions?state={st}", limit=500)[0]
            for st in ("proceeding", "answered", "ended")}


def main(argv):
    a = parse_args(argv)
    n = a.sessions
    ramp = max(1, -(-n // a.rate))
    hold_s = ramp + a.settle
    uac_timeout = ramp + hold_s + 90
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(a.out or os.path.join(switchboard.REPO, "bench", "results",
                                                f"sessions-{n}-{a.db}-{ts}"))
    os.makedirs(out, exist_ok=True)
    binary = os.path.abspath(a.binary) if a.binary else switchboard.build()
    workdir = tempfile.mkdtemp(prefix="switchboard-bench-sessions-")
    db = switchboard.Database(a.db, workdir, a.pg_url)
    sb, uac, uas = None, None, None
    res = {"sessions": n, "db": a.db, "rate": a.rate, "hold_s": hold_s}
    try:
        sb = switchboard.Switchboard(binary, workdir, db, a.sip_port, a.http_port, nice=a.nice)
        sb.api.provision(a.uas_port)
        cdrs = measure.CdrCounter(sb.api)
        procfs.wait_idle(sb.pid, max_wait=30)
        rss0 = procfs.status_kib(sb.pid, "VmRSS")
        res["rss_idle_kib"] = rss0
        res["queries_empty"] = time_queries(sb.api, 5)
        print(f"== {n} sessions on {a.db}: ramp {ramp} s at {a.rate}/s, hold {hold_s} s; "
              f"idle RSS {rss0 / 1024:.1f} MiB; results {out}", flush=True)
        fds = n * 2 + 1000
        with measure.BenchLock():
            uas = sippstep.start_uas(out, a.uas_port, n, uac_timeout + 10, a.nice, fds)
            uac = sippstep.start_uac(out, sb.sip, a.uac_port, a.rate, n, n, hold_s * 1000,
                                     uac_timeout, a.nice, fds)
            t_start = time.monotonic()
            # established = answered and not yet hung up: wait for all N
            deadline = t_start + ramp * 2 + 60
            while time.monotonic() < deadline and uac.alive():
                s = last_stat(os.path.join(out, "uac_stat.csv"))
                if sippstep.counter(s, "TotalCallCreated") >= n and \
                        sippstep.counter(s, "CurrentCall") >= n:
                    break
                time.sleep(1)
            res["ramp_s"] = round(time.monotonic() - t_start, 1)
            time.sleep(2)
            before = last_stat(os.path.join(out, "uac_stat.csv"))
            rss1 = procfs.status_kib(sb.pid, "VmRSS")
            res.update({"rss_held_kib": rss1, "hwm_kib": procfs.status_kib(sb.pid, "VmHWM"),
                        "threads": procfs.threads(sb.pid),
                        "open_calls_at_measure": sippstep.counter(before, "CurrentCall"),
                        "failed_at_measure": sippstep.counter(before, "FailedCall(C)")})
            held = max(1, res["open_calls_at_measure"])
            res["rss_per_session_bytes"] = round((rss1 - rss0) * 1024 / held)
            # the listings are timed once the write-behind publisher is done
            res["publish_wait_s"] = procfs.wait_idle(sb.pid, threshold=0.05, max_wait=30)
            res["published"], res["publish_walk_s"] = wait_published(sb.api, held)
            res["other_states"] = states(sb.api)
            cpu0 = procfs.cpu_seconds(sb.pid)
            t_q = time.monotonic()
            res["queries"] = time_queries(sb.api, a.samples)
            res["query_cpu_s"] = round(procfs.cpu_seconds(sb.pid) - cpu0, 2)
            res["query_wall_s"] = round(time.monotonic() - t_q, 1)
            after = last_stat(os.path.join(out, "uac_stat.csv"))
            res["open_calls_after_queries"] = sippstep.counter(after, "CurrentCall")
            # again once the transactions of the ramp are gone (RFC 3261
            # Timer J and RFC 6026 Timer L/M keep them 32 s): the sessions
            # alone
            settled_at = t_start + res["ramp_s"] + 40
            if settled_at < t_start + hold_s - 5:
                time.sleep(max(0.0, settled_at - time.monotonic()))
                late = last_stat(os.path.join(out, "uac_stat.csv"))
                rss2 = procfs.status_kib(sb.pid, "VmRSS")
                open2 = max(1, sippstep.counter(late, "CurrentCall"))
                res.update({"rss_settled_kib": rss2, "open_calls_settled": open2,
                            "rss_per_session_settled_bytes": round((rss2 - rss0) * 1024 / open2)})
            uac.wait(t_start + uac_timeout + 15)
            uas.wait(time.monotonic() + 10)
        final = sippstep.summarize(out, a.rate, n)
        res["calls"] = {k: final[k] for k in ("attempted", "ok", "failed", "incomplete",
                                              "retrans", "setup_p50", "setup_p99")}
        procfs.wait_idle(sb.pid, max_wait=60)
        res["cdrs"] = cdrs.count_new(final["ok"], settle=60)
        res["rss_after_kib"] = procfs.status_kib(sb.pid, "VmRSS")
    finally:
        for p in (uac, uas):
            if p:
                p.kill()
        if sb:
            sb.stop()
            shutil.copy(sb.log_path, os.path.join(out, "switchboard.log"))
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    measure.compress_big(out)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(render(res))
    print(f"results: {out}")


def render(r):
    mib = lambda k: f"{(r.get(k) or 0) / 1024:.1f} MiB"
    warn = []
    if (r.get("open_calls_at_measure") or 0) < r["sessions"]:
        warn.append("WARNING: fewer sessions held than asked (failures, or --settle too short)")
    if (r.get("open_calls_after_queries") or 0) < (r.get("open_calls_at_measure") or 0):
        warn.append("WARNING: sessions ended during the queries: raise --settle")
    lines = warn + [
        f"sessions held          : {r.get('open_calls_at_measure')} of {r['sessions']} "
        f"({r['db']}, ramp {r.get('ramp_s')} s at {r['rate']}/s), failed so far {r.get('failed_at_measure')}",
        f"RSS idle / held / after: {mib('rss_idle_kib')} / {mib('rss_held_kib')} / {mib('rss_after_kib')}"
        f" (peak {mib('hwm_kib')}, {r.get('threads')} threads)",
        f"RSS per session        : {r.get('rss_per_session_bytes')} bytes right after the ramp; "
        f"{r.get('rss_per_session_settled_bytes')} bytes 40 s later ({r.get('open_calls_settled')} held, "
        f"RSS {(r.get('rss_settled_kib') or 0) / 1024:.1f} MiB)",
    ]
    for name, key in (("empty", "queries_empty"), ("at size", "queries")):
        for q, v in (r.get(key) or {}).items():
            if "p50_ms" in v:
                lines.append(f"GET /v1/sessions?{q:<28} {name:<7}: p50 {v['p50_ms']} ms, "
                             f"max {v['max_ms']} ms, {v['items']} items")
            else:
                lines.append(f"{q:<45} {name:<7}: {v['total_s']} s, {v['items']} items, {v['pages']} pages")
    lines.append(f"published established    : {r.get('published')} (after {r.get('publish_walk_s')} s of walks); "
                 f"other states {r.get('other_states')}")
    lines.append(f"Switchboard CPU for the queries: {r.get('query_cpu_s')} s in {r.get('query_wall_s')} s")
    c = r.get("calls", {})
    lines.append(f"calls: ok {c.get('ok')} failed {c.get('failed')} unfinished {c.get('incomplete')} "
                 f"retrans {c.get('retrans')} setup p50/p99 {c.get('setup_p50')}/{c.get('setup_p99')} ms; "
                 f"CDRs {r.get('cdrs')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
