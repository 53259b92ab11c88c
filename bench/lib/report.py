"""Tables of the load steps: one row per step, the highest passing rate per
run, and Switchboard beside Kamailio at the rates both ran."""

COLS = [("who", 10, "engine"), ("rate", 6, "rate"), ("achieved", 8, "achieved"),
        ("attempt", 7, "attempted"), ("ok", 7, "ok"), ("failed", 6, "failed"),
        ("unfin", 5, "incomplete"), ("retr%", 6, "retrans_pct"), ("p50ms", 5, "setup_p50"),
        ("p99ms", 5, "setup_p99"), ("set50us", 7, "setup_us_p50"), ("set99us", 7, "setup_us_p99"),
        ("add50us", 7, "added_us_p50"), ("add99us", 7, "added_us_p99"),
        ("us/call", 7, "cpu_us_per_call"), ("us_stdy", 7, "cpu_us_steady"),
        ("sip_us", 6, "sip_us_per_call"), ("sql_us", 6, "sqlite_us_per_call"),
        ("pg_us", 5, "pg_us_per_call"), ("cpu%", 5, "sb_cpu_pct"),
        ("rssMiB", 6, "peak_rss_kib"), ("CDRs", 7, "cdrs"), ("other%", 6, "other_pct"),
        ("drops", 5, "udp_drops"), ("pass", 4, "pass")]

LEGEND = """\
achieved = offered calls/s measured from the INVITE send times; unfin = calls
neither successful nor failed; retr% = sipp retransmissions (caller + app
server) per 100 calls; p50ms/p99ms = call setup, first INVITE -> 200 (407
round trip included) by sipp's clock, which ticks in 4 ms steps;
set50us/set99us = the same setup to the microsecond from a 0.5-2 s packet
capture 3 s into the step; add50us/add99us = the part of it spent inside
Switchboard (407, INVITE relay, 200 relay); us/call = Switchboard CPU
(utime+stime over the whole step, write-behind included) / successful
calls; us_stdy = CPU share while calls were offered / offered rate (the
peer harness's relay_us); sip_us / sql_us = the part of us/call spent on
the threads named "sip" (the SIP engine) / "sqlx-sqlite-wor" (SQLite's
worker threads); pg_us = CPU of the PostgreSQL backends serving
Switchboard / successful call; cpu% = Switchboard CPU in % of one core over
the step; rssMiB = Switchboard peak RSS (VmHWM, reset per step); CDRs = new
CDRs over REST after the step (must equal ok); other% = CPU of everything
else on the box (% of one core; sipp not included); drops = UDP datagrams
the kernel dropped on a full socket receive buffer, machine-wide (sipp's
sockets too; /proc/net/snmp RcvbufErrors).
Pass: 0 failed, every call successful, retr% < 1, achieved >= 95 % of rate."""


def fmt(v, key):
    if v is None or v == "":
        return "-"
    if key == "pass":
        return "yes" if v else "NO"
    if key == "peak_rss_kib":
        return f"{v / 1024:.0f}"
    if isinstance(v, float):
        if key in ("retrans_pct",):
            return f"{v:.2f}"
        if key in ("setup_p50", "setup_p99"):
            return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
        return f"{v:.0f}"
    return str(v)


def header():
    return " ".join(f"{name:<{w}}" for name, w, _ in COLS)


def row(r, label=None):
    cells = []
    for name, w, key in COLS:
        v = label if key == "engine" and label else r.get(key)
        cells.append(f"{fmt(v, key):<{w}}")
    line = " ".join(cells)
    if r.get("error"):
        line += "  " + r["error"]
    if r.get("cdrs") is not None and r.get("ok") is not None and "engine" in r \
            and r.get("engine") != "kamailio-B" and r["cdrs"] != r["ok"]:
        line += f"  CDRs != ok ({r['cdrs']} vs {r['ok']})"
    return line


def max_pass(rows):
    """The highest rate that passed, among the steps up to the first fail."""
    best = 0
    for r in sorted(rows, key=lambda r: r["rate"]):
        if not r.get("pass"):
            break
        best = r["rate"]
    return best


def final(results):
    out = []
    runs = results["runs"]
    for engine, rows in runs.items():
        out.append(f"== {engine}")
        out.append(header())
        out.extend(row(r, label=engine) for r in rows)
        out.append(f"max passing rate on {engine}: {max_pass(rows)} calls/s")
        out.append("")
    kam = runs.get("kamailio-B")
    if kam:
        engine = next(e for e in runs if e != "kamailio-B")
        ours = {r["rate"]: r for r in runs[engine]}
        out.append(f"== Switchboard ({engine}) beside Kamailio B, same run")
        out.append(f"{'rate':<6} {'SB pass':<7} {'SB us_stdy':<10} {'SB us/call':<10} "
                   f"{'SB p50/p99 ms':<14} {'Kam pass':<8} {'Kam us_stdy':<11} {'Kam p50/p99 ms':<14}")
        for k in kam:
            o = ours.get(k["rate"], {})
            sb_lat = f"{fmt(o.get('setup_p50'), 'setup_p50')}/{fmt(o.get('setup_p99'), 'setup_p99')}"
            kam_lat = f"{fmt(k.get('setup_p50'), 'setup_p50')}/{fmt(k.get('setup_p99'), 'setup_p99')}"
            out.append(f"{k['rate']:<6} {fmt(o.get('pass'), 'pass'):<7} "
                       f"{fmt(o.get('cpu_us_steady'), 'x'):<10} {fmt(o.get('cpu_us_per_call'), 'x'):<10} "
                       f"{sb_lat:<14} {fmt(k.get('pass'), 'pass'):<8} "
                       f"{fmt(k.get('cpu_us_steady'), 'x'):<11} {kam_lat:<14}")
        out.append(f"max passing rate: Switchboard ({engine}) {max_pass(runs[engine])}, "
                   f"Kamailio B {max_pass(kam)} calls/s")
        out.append("")
    out.append(LEGEND)
    return "\n".join(out)
