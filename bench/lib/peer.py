"""Kamailio's figures from the peer harness (read-only, see its README):
variant B (digest proxy auth of every INVITE) at one rate per call, by its
own `find_max.sh B RATE` with no bisection. Its results go to BENCH_OUT."""
import glob
import os
import re
import shutil
import subprocess

DEFAULT_DIR = os.environ.get("PEER_BENCH", "/work/shared/peer-bench")


def available(peer_dir):
    missing = [p for p in ("find_max.sh",) if not os.path.exists(os.path.join(peer_dir, p))]
    missing += [b for b in ("kamailio", "kamcmd", "sipp") if not shutil.which(b)]
    return missing


def _num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def run_b(peer_dir, out_dir, rate, duration, pause_ms, nice=None, timeout=900):
    """One Kamailio B step at `rate`; returns its figures (None values
    when the harness did not produce them)."""
    env = dict(os.environ, BENCH_OUT=out_dir, REFINE="0", DURATION=str(duration),
               PAUSE_MS=str(pause_ms), REPEAT=os.environ.get("KAM_REPEAT", "1"))
    if nice:
        env["BENCH_NICE"] = str(nice)
    os.makedirs(out_dir, exist_ok=True)
    log = os.path.join(out_dir, f"find_max-B-{rate}.log")
    with open(log, "wb") as f:
        try:
            subprocess.run([os.path.join(peer_dir, "find_max.sh"), "B", str(rate)], cwd=peer_dir,
                           env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"rate": rate, "pass": False, "error": "harness timed out"}
    with open(log, errors="replace") as f:
        text = f.read()
    m = re.search(r"results=(\S+)", text)
    if not m:
        return {"rate": rate, "pass": False, "error": "no harness result, see " + log}
    res = m.group(1)
    return parse_step(res, rate)


def parse_step(res, rate):
    """Figures of the (last) trial at `rate` in a find_max results folder."""
    r = {"rate": rate, "results": res}
    rows = []
    with open(os.path.join(res, "table.txt")) as f:
        for line in f:
            p = line.split()
            if p and p[0] == str(rate):
                rows.append(p)
    if rows:
        # rate achieved ok failed unexp retrans% relayCPU relay_us uacCPU uasCPU otherCPU CDRs setup99 pass
        p = rows[-1]
        keys = ["rate", "achieved", "ok", "failed", "unexpected", "retrans_pct", "relay_cpu_pct",
                "cpu_us_steady", "uac_cpu_pct", "uas_cpu_pct", "other_pct", "cdrs", "setup_p99",
                "pass"]
        for k, v in zip(keys, p):
            r[k] = _num(v)
        r["rate"] = rate
        r["pass"] = r.get("pass") == 1
    runs = sorted(glob.glob(os.path.join(res, f"rate-{rate}-*", "run.txt")))
    if runs:
        with open(runs[-1], errors="replace") as f:
            text = f.read()
        m = re.search(r"^rtt INVITE->200.*?p50=([\d.]+) p90=([\d.]+) p99=([\d.]+)", text, re.M)
        if m:
            r["setup_p50"], r["setup_p99"] = float(m.group(1)), float(m.group(3))
        m = re.search(r"^RESULT .*attempted=(\d+).*incomplete=(-?\d+) retrans=(\d+)", text, re.M)
        if m:
            r["attempted"], r["incomplete"], r["retrans"] = (int(m.group(1)), int(m.group(2)),
                                                             int(m.group(3)))
    return r
