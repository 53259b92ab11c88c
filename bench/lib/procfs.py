"""What the kernel says about a process: CPU time, memory, and a sampler.

CPU time comes from /proc/<pid>/stat (utime + stime of the whole thread
group, dead threads included); the kernel scales these tick samples to the
precise scheduler runtime, so the sum over a step is exact enough to divide
by the number of calls. Peak RSS is VmHWM from /proc/<pid>/status, reset at
the start of a step by writing 5 to /proc/<pid>/clear_refs (proc(5)), so that
each step reports its own peak.
"""
import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the whole process in seconds, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # the command name may contain spaces: fields start after the last ')'
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...) in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss(pid):
    """Resets VmHWM to the current RSS; False when not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def thread_dirs(pid):
    """/proc directories of `pid`'s live threads, None once it is gone."""
    try:
        return [f"/proc/{pid}/task/{t}" for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return None


def ctx_switches(pid):
    """Context switches (voluntary, involuntary) summed over the live
    threads: each wake-up of a parked thread is one."""
    vol = invol = 0
    tasks = thread_dirs(pid)
    if tasks is None:
        return None
    for t in tasks:
        try:
            with open(f"{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            pass
    return vol, invol


def machine_busy_seconds():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat.

    Tick based, so only good for a rough "was somebody else busy" figure.
    """
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    v = [int(x) for x in parts]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def task_runtimes():
    """{(pid, tid): seconds on CPU} of every task on the machine, from
    /proc/<pid>/task/<tid>/schedstat (precise, unlike /proc/stat ticks)."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    out[(int(p), int(t))] = int(f.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                pass
    return out


def thread_runtimes(pid):
    """{thread name: seconds on CPU} of `pid`'s live threads, threads of
    one name summed (tokio names its workers alike), from schedstat."""
    out = {}
    for t in thread_dirs(pid) or []:
        try:
            with open(f"{t}/comm") as f:
                name = f.read().strip()
            with open(f"{t}/schedstat") as f:
                secs = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
        out[name] = out.get(name, 0.0) + secs
    return out


def runtime_delta(before, after, exclude_pids=()):
    """CPU seconds between two task_runtimes() of the tasks in both, less
    those of `exclude_pids` (tasks born and dead in between are missed)."""
    ex = set(exclude_pids)
    return sum(v - before[k] for k, v in after.items() if k in before and k[0] not in ex)


class Sampler:
    """Samples a process's CPU and RSS every `interval` seconds in a thread.

    `samples` holds (monotonic time, cpu seconds, rss KiB) tuples; stop()
    ends the thread. Bounded by `max_seconds` whatever happens.
    """

    def __init__(self, pid, interval=1.0, max_seconds=3600):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._take()
        self._thread.start()
        return self

    def _take(self):
        c = cpu_seconds(self.pid)
        r = status_kib(self.pid, "VmRSS")
        if c is not None:
            self.samples.append((time.monotonic(), c, r or 0))

    def _run(self):
        while not self._stop.wait(self.interval):
            self._take()
            if time.monotonic() > self._deadline:
                break

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()

    def max_rss(self):
        return max((r for _, _, r in self.samples), default=0)

    def cpu_between(self, t_from, t_to):
        """Average CPU (share of one core) between two monotonic instants,
        from the samples nearest inside that window."""
        inside = [s for s in self.samples if t_from <= s[0] <= t_to]
        if len(inside) < 2:
            return None
        (t0, c0, _), (t1, c1, _) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None


def wait_idle(pid, threshold=0.03, quiet_for=1.0, max_wait=30.0):
    """Waits until `pid` used less than `threshold` of a core for
    `quiet_for` seconds (its write-behind work done); returns the seconds
    waited, or None when it never got quiet within `max_wait`."""
    t_start = time.monotonic()
    prev = cpu_seconds(pid)
    quiet = 0.0
    step = 0.25
    while time.monotonic() - t_start < max_wait:
        time.sleep(step)
        cur = cpu_seconds(pid)
        if cur is None or prev is None:
            return None
        quiet = quiet + step if (cur - prev) / step < threshold else 0.0
        prev = cur
        if quiet >= quiet_for:
            return time.monotonic() - t_start
    return None


def udp_rcvbuf_errors():
    """Machine-wide count of UDP datagrams the kernel dropped because a
    socket's receive buffer was full (/proc/net/snmp, Udp RcvbufErrors)."""
    try:
        with open("/proc/net/snmp") as f:
            lines = [l.split() for l in f if l.startswith("Udp:")]
        names, values = lines[0], lines[1]
        return int(values[names.index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None
