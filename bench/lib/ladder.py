"""bench/run.sh: steps the call rate through Switchboard (sipp caller with
digest auth -> Switchboard -> sipp app server) on SQLite and/or PostgreSQL,
optionally with Kamailio (peer harness, variant B) at the same rates,
and prints a table per run with the highest passing rate."""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile

import measure
import peer
import report
import switchboard


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__)
    ap.add_argument("--db", default="sqlite",
                    help="sqlite, postgres, or both comma-separated (default sqlite)")
    ap.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000,7000,8000,10000",
                    help="calls/s per step, comma-separated; stops at the first failing step")
    ap.add_argument("--duration", type=int, default=20, help="seconds of load per step (20)")
    ap.add_argument("--pause-ms", type=int, default=1000, help="call hold ACK->BYE (1000)")
    ap.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    ap.add_argument("--with-kamailio", action="store_true",
                    help="also run the peer harness's Kamailio B at each rate (first --db only)")
    ap.add_argument("--peer-bench", default=peer.DEFAULT_DIR, help="the peer harness folder")
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--nice", type=int, default=int(os.environ.get("BENCH_NICE", "0")) or None,
                    help="nice level of Switchboard, sipp and Kamailio (e.g. -20 on a shared box)")
    ap.add_argument("--sip-port", type=int, default=5090)
    ap.add_argument("--http-port", type=int, default=18090)
    ap.add_argument("--uas-port", type=int, default=5094)
    ap.add_argument("--uac-port", type=int, default=5092)
    ap.add_argument("--perf", type=int, action="append", default=[], metavar="RATE",
                    help="profile Switchboard with perf during the step at RATE (repeatable)")
    ap.add_argument("--binary", help="use this switchboard binary instead of cargo build --release")
    ap.add_argument("--out", help="results folder (default bench/results/<time>)")
    a = ap.parse_args(argv)
    a.rates = [int(x) for x in a.rates.split(",") if x.strip()]
    a.dbs = [x.strip() for x in a.db.split(",") if x.strip()]
    for d in a.dbs:
        if d not in ("sqlite", "postgres"):
            ap.error(f"--db: unknown engine {d}")
    return a


def ladder(a, engine, binary, out, with_kam):
    """One Switchboard on `engine` through all rates; returns (ours, kam)."""
    workdir = tempfile.mkdtemp(prefix=f"switchboard-bench-{engine}-")
    db = switchboard.Database(engine, workdir, a.pg_url)
    ports = {"uas": a.uas_port, "uac": a.uac_port}
    ours, kam = [], []
    sb = None
    try:
        sb = switchboard.Switchboard(binary, workdir, db, a.sip_port, a.http_port, nice=a.nice)
        sb.api.provision(a.uas_port)
        cdrs = measure.CdrCounter(sb.api)
        print(f"\n== Switchboard on {engine} (pid {sb.pid}), {a.duration} s per step, "
              f"hold {a.pause_ms} ms, results {out}", flush=True)
        print(report.header(), flush=True)
        ours_on, kam_on = True, with_kam
        for rate in a.rates:
            if not ours_on and not kam_on:
                break
            if ours_on:
                sb.api.login()  # a fresh token for each step: runs may outlast one
                r = measure.run_step(sb, cdrs, os.path.join(out, engine, f"rate-{rate}"), rate,
                                     a.duration, a.pause_ms, ports, a.nice,
                                     perf=rate in a.perf, db=db)
                r["engine"] = engine
                ours.append(r)
                print(report.row(r), flush=True)
                ours_on = r["pass"] or a.keep_going
            if kam_on:
                k = peer.run_b(a.peer_bench, os.path.join(out, "kamailio"), rate, a.duration,
                               a.pause_ms, a.nice)
                k["engine"] = "kamailio-B"
                kam.append(k)
                print(report.row(k, label="kamailio-B"), flush=True)
                kam_on = k.get("pass") or a.keep_going
    finally:
        if sb:
            sb.stop()
            shutil.copy(sb.log_path, os.path.join(out, f"switchboard-{engine}.log"))
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    return ours, kam


def main(argv):
    a = parse_args(argv)
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(a.out or os.path.join(switchboard.REPO, "bench", "results", ts))
    os.makedirs(out, exist_ok=True)
    with_kam = a.with_kamailio
    if with_kam:
        missing = peer.available(a.peer_bench)
        if missing:
            sys.exit(f"--with-kamailio: missing {', '.join(missing)} (apt-get install -y "
                     "kamailio kamailio-sqlite-modules sqlite3 sysstat sip-tester)")
    binary = os.path.abspath(a.binary) if a.binary else switchboard.build()
    results = {"started": ts, "args": vars(a), "runs": {}}
    for i, engine in enumerate(a.dbs):
        ours, kam = ladder(a, engine, binary, out, with_kam and i == 0)
        results["runs"][engine] = ours
        if kam:
            results["runs"]["kamailio-B"] = kam
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    text = report.final(results)
    print("\n" + text)
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(text + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
