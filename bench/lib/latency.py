"""Call setup latency to the microsecond, from a short packet capture.

sipp's own clock ticks in 4 ms steps on this kernel (its -trace_rtt values
are multiples of 4), too coarse for a relay that adds well under a
millisecond. So a step may capture a window of its SIP traffic on the
loopback with tcpdump (kernel timestamps) and time each call here:

  t1 first INVITE  caller -> Switchboard     t2 407         Switchboard -> caller
  t3 INVITE (auth) caller -> Switchboard     t4 INVITE      Switchboard -> app server
  t5 200           app server -> Switchboard t6 200         Switchboard -> caller

setup = t6 - t1 (what the caller waits, its own 407 handling included);
added = (t2 - t1) + (t4 - t3) + (t6 - t5), the time the call spends inside
Switchboard. The app server's INVITE is tied to the caller's call by the
SDP origin session id, which the caller sets to its call number and
Switchboard relays unchanged.
"""
import os
import shutil
import struct
import subprocess


def start_capture(path, ports, snaplen=2048):
    """tcpdump of UDP to or from `ports` on lo into `path`; None without
    tcpdump (the step then has no precise latency)."""
    if not shutil.which("tcpdump"):
        return None
    flt = " or ".join(f"udp port {p}" for p in ports)
    return subprocess.Popen(["tcpdump", "-i", "lo", "-s", str(snaplen), "-B", "65536", "-n", "-q",
                             "-w", path, flt], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_capture(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def packets(path):
    """(time s, src port, dst port, payload) of each UDP/IPv4 packet."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20}.get(linktype)  # ethernet, SLL, SLL2
    if link_len is None:
        return
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[link_len:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        yield sec + frac / (1e9 if nano else 1e6), sport, dport, ip[ihl + 8:]


def sip_fields(payload):
    """(first line, Call-ID, CSeq method, SDP origin session id)."""
    head, _, body = payload.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    call_id = cseq = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        n = name.strip().lower()
        if n in (b"call-id", b"i"):
            call_id = value.strip()
        elif n == b"cseq":
            cseq = value.split()[-1] if value.split() else None
    origin = None
    for line in body.split(b"\r\n"):
        if line.startswith(b"o="):
            p = line[2:].split()
            origin = p[1] if len(p) > 1 else None
            break
    return lines[0], call_id, cseq, origin


def analyse(path, sb_port, uac_port, uas_port):
    """Per-call setup and added latency (ms) of the calls complete in the
    capture: {"setup": [...], "added": [...], "challenge": [...],
    "invite": [...], "answer": [...]}"""
    calls = {}     # client Call-ID -> {t1..t6}
    by_origin = {}  # SDP origin id -> client Call-ID
    as_calls = {}   # AS Call-ID -> {t4, t5}
    as_origin = {}  # AS Call-ID -> origin id
    for t, sp, dp, pl in packets(path):
        first, cid, method, origin = sip_fields(pl)
        if cid is None:
            continue
        is_invite = first.startswith(b"INVITE ")
        if sp == uac_port and dp == sb_port and is_invite:
            c = calls.setdefault(cid, {})
            if "t1" not in c:
                c["t1"] = t
            elif "t3" not in c and "t2" in c:
                c["t3"] = t
                if origin:
                    by_origin[origin] = cid
        elif sp == sb_port and dp == uac_port and method == b"INVITE":
            c = calls.get(cid)
            if c is None:
                continue
            if first.startswith(b"SIP/2.0 407") and "t2" not in c:
                c["t2"] = t
            elif first.startswith(b"SIP/2.0 200") and "t6" not in c:
                c["t6"] = t
        elif sp == sb_port and dp == uas_port and is_invite:
            a = as_calls.setdefault(cid, {})
            a.setdefault("t4", t)
            if origin:
                as_origin[cid] = origin
        elif sp == uas_port and dp == sb_port and first.startswith(b"SIP/2.0 200") \
                and method == b"INVITE":
            as_calls.setdefault(cid, {}).setdefault("t5", t)
    out = {k: [] for k in ("setup", "added", "challenge", "invite", "answer")}
    for acid, a in as_calls.items():
        cid = by_origin.get(as_origin.get(acid))
        c = calls.get(cid) if cid else None
        if not c or len(c) < 4 or "t4" not in a or "t5" not in a:
            continue
        if not all(k in c for k in ("t1", "t2", "t3", "t6")):
            continue
        ms = lambda x: x * 1000.0
        ch, inv, ans = ms(c["t2"] - c["t1"]), ms(a["t4"] - c["t3"]), ms(c["t6"] - a["t5"])
        out["setup"].append(ms(c["t6"] - c["t1"]))
        out["challenge"].append(ch)
        out["invite"].append(inv)
        out["answer"].append(ans)
        out["added"].append(ch + inv + ans)
    return out


def summary(path, sb_port, uac_port, uas_port):
    """n, p50 and p99 (ms, 3 decimals) of each latency of the capture."""
    from sippstep import percentile
    res = analyse(path, sb_port, uac_port, uas_port)
    s = {"n": len(res["setup"]), "capture_mib": round(os.path.getsize(path) / 2**20, 1)}
    for k, v in res.items():
        v.sort()
        for q in (50, 99):
            p = percentile(v, q)
            s[f"{k}_p{q}"] = round(p, 3) if p is not None else None
    return s
