"""One bounded load step: a sipp app server and a sipp caller through
Switchboard at a given rate, and what came of it.

Every sipp gets `-m` (a call count), `-timeout` (a global deadline) and a
watchdog here that kills it a little after that deadline, so a step ends by
itself whatever Switchboard does. Traffic stays on 127.0.0.1.
"""
import csv
import glob
import os
import resource
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(os.path.dirname(HERE), "scenarios")
# The calling client's digest credentials (sipp -au/-ap; Switchboard wants
# 8 characters at least) and the Request-URI user its rule matches.
CLIENT_USER, CLIENT_PASSWORD = "sipp", "sipp-bench"
SERVICE_USER = "bench"
COMMON = ["-i", "127.0.0.1", "-nostdin", "-buff_size", "4194304", "-trace_err",
          "-max_recv_loops", "10000", "-max_sched_loops", "10000"] + \
    os.environ.get("SIPP_OPTS", "").split()


def _fd_limit(n):
    """preexec: sipp wants a descriptor per open call (it keeps some for
    media); root may raise the hard limit."""
    def raise_limit():
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return raise_limit


class Sipp:
    """A sipp process with its own log files in `outdir`."""

    def __init__(self, name, args, outdir, nice=None, fds=4096):
        self.name = name
        cmd = ["sipp"] + args
        if nice:
            cmd = ["nice", "-n", str(nice)] + cmd
        self.command = " ".join(cmd)
        self.out = open(os.path.join(outdir, f"{name}.out"), "wb")
        self.proc = subprocess.Popen(cmd, cwd=outdir, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, preexec_fn=_fd_limit(fds))
        self.rusage = None
        self.code = None

    def alive(self):
        if self.code is not None:
            return False
        pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._reaped(status, ru)
        return False

    def _reaped(self, status, ru):
        self.code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.code  # reaped here, not by Popen
        self.rusage = ru
        self.out.close()

    def wait(self, deadline):
        """Waits until `deadline` (monotonic), then TERM, then KILL."""
        while self.alive():
            if time.monotonic() >= deadline:
                self.proc.terminate()
                end = time.monotonic() + 3
                while self.alive() and time.monotonic() < end:
                    time.sleep(0.1)
                if self.alive():
                    self.proc.kill()
                    _, status, ru = os.wait4(self.proc.pid, 0)
                    self._reaped(status, ru)
                break
            time.sleep(0.1)
        return self.code

    def cpu_seconds(self):
        return (self.rusage.ru_utime + self.rusage.ru_stime) if self.rusage else None

    def kill(self):
        if self.alive():
            self.proc.kill()
            _, status, ru = os.wait4(self.proc.pid, 0)
            self._reaped(status, ru)


def udp_bound(port):
    """True once something listens on UDP 127.0.0.1:port."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def start_uas(outdir, port, calls, timeout_s, nice=None, fds=4096, extra=()):
    args = ["-sf", os.path.join(SCENARIOS, "uas.xml"), "-p", str(port), "-mp", "16100",
            "-m", str(calls), "-timeout", f"{timeout_s}s", "-stf", "uas_stat.csv",
            "-trace_stat", "-fd", "1", "-bind_local"] + COMMON + list(extra)
    uas = Sipp("uas", args, outdir, nice, fds)
    for _ in range(50):
        if udp_bound(port):
            return uas
        if not uas.alive():
            break
        time.sleep(0.1)
    uas.kill()
    raise RuntimeError(f"sipp UAS did not come up on UDP {port}, see {outdir}/uas.out")


def start_uac(outdir, target, port, rate, calls, limit, pause_ms, timeout_s, nice=None,
              fds=4096, extra=()):
    args = [target, "-sf", os.path.join(SCENARIOS, "uac_auth.xml"), "-p", str(port),
            "-mp", "17100", "-s", SERVICE_USER, "-au", CLIENT_USER, "-ap", CLIENT_PASSWORD,
            "-key", "domain", "127.0.0.1", "-r", str(rate), "-rp", "1000", "-m", str(calls),
            "-l", str(limit), "-d", str(pause_ms), "-timeout", f"{timeout_s}s",
            "-recv_timeout", "15000", "-stf", "uac_stat.csv", "-trace_stat", "-fd", "1",
            "-trace_rtt", "-rtt_freq", "200", "-trace_screen",
            "-default_behaviors", "all,-abortunexp", "-bind_local"] + COMMON + list(extra)
    return Sipp("uac", args, outdir, nice, fds)


def read_stf(path):
    """Rows of a sipp -stf file as dicts (last row = the final counters)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        return []
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def counter(row, key):
    try:
        return int(float(row.get(key, 0) or 0))
    except ValueError:
        return 0


def read_rtt(outdir):
    """{rtd number: [(sent at ms, rtt ms)]} from sipp's -trace_rtt file."""
    out = {}
    for path in glob.glob(os.path.join(outdir, "*_rtt.csv")):
        with open(path) as f:
            for line in f:
                p = line.strip().split(";")
                if len(p) != 3:
                    continue
                try:
                    at, rtt = float(p[0]), float(p[1])
                except ValueError:
                    continue  # the header
                out.setdefault(p[2], []).append((at - rtt, rtt))
    return out


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def summarize(outdir, rate, calls, max_retrans_pct=1.0):
    """The step's figures from the sipp files, with the pass verdict: 0
    failed, every call successful, retransmissions (caller + app server)
    under `max_retrans_pct` % of the calls, and >= 95 % of the rate
    achieved (sipp throttles itself at -l, which must count as a fail)."""
    uac = read_stf(os.path.join(outdir, "uac_stat.csv"))
    uas = read_stf(os.path.join(outdir, "uas_stat.csv"))
    last = uac[-1] if uac else {}
    last_uas = uas[-1] if uas else {}
    r = {"rate": rate, "calls": calls,
         "attempted": counter(last, "TotalCallCreated"),
         "ok": counter(last, "SuccessfulCall(C)"),
         "failed": counter(last, "FailedCall(C)"),
         "retrans_uac": counter(last, "Retransmissions(C)"),
         "retrans_uas": counter(last_uas, "Retransmissions(C)"),
         "uas_ok": counter(last_uas, "SuccessfulCall(C)"),
         "uas_failed": counter(last_uas, "FailedCall(C)"),
         "unexpected": counter(last, "OutOfCallMsgs(C)") + counter(last_uas, "OutOfCallMsgs(C)")}
    r["failure_kinds"] = {k[6:-3]: counter(last, k) for k in last
                          if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)"
                          and counter(last, k)}
    r["incomplete"] = r["attempted"] - r["ok"] - r["failed"]
    r["retrans"] = r["retrans_uac"] + r["retrans_uas"]
    r["retrans_pct"] = 100.0 * r["retrans"] / max(1, r["attempted"])
    rtts = read_rtt(outdir)
    setup = rtts.get("1", [])
    r["achieved"] = None
    if len(setup) > 10:
        starts = sorted(t for t, _ in setup)
        span = (starts[-1] - starts[0]) / 1000.0
        if span > 0:
            r["achieved"] = (len(starts) - 1) / span
    for rtd, name in (("1", "setup"), ("2", "bye")):
        v = sorted(x for _, x in rtts.get(rtd, []))
        r[f"{name}_n"] = len(v)
        for q in (50, 90, 99):
            r[f"{name}_p{q}"] = percentile(v, q)
        r[f"{name}_max"] = v[-1] if v else None
    r["pass"] = (r["failed"] == 0 and r["ok"] == calls and r["retrans_pct"] < max_retrans_pct
                 and r["achieved"] is not None and r["achieved"] >= 0.95 * rate)
    return r
