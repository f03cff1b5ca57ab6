"""What guard --watch costs: CPU time and memory of guard watching a child with many memory maps.

Starts `guard --watch --interval I -- python -c WORKLOAD N` for a child with N memory maps (60k,
and 100 as the idle baseline), waits until the child has mapped them and guard has settled, then
reads guard's utime + stime (/proc/PID/stat) over a window and its peak RSS (VmHWM).

    .venv-dev/bin/python bench/bench_watch.py [--seconds 30] [--interval 1] [--maps 60000]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

# One page at a time with alternating protections so neighbours never merge into one VMA.
WORKLOAD = """
import ctypes, mmap, signal, sys
want, ready = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
with open("/proc/self/maps", "rb") as f:
    present = f.read().count(b"\\n")
for i in range(max(0, want - present)):
    prot = mmap.PROT_READ if i % 2 else mmap.PROT_READ | mmap.PROT_WRITE
    libc.mmap(None, mmap.PAGESIZE, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
open(ready, "w").close()
signal.pause()
"""

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (proc(5) fields 14, 15)


def status_kib(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def map_lines(pid):
    with open(f"/proc/{pid}/maps", "rb") as f:
        return f.read().count(b"\n")


def measure(maps, interval, seconds, settle):
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        command = [sys.executable, "-m", "guard", "--quiet", "--watch", "--interval", str(interval),
                   "--", sys.executable, "-c", WORKLOAD, str(maps), ready]
        guard = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not os.path.exists(ready):
                if guard.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the workload with {maps} maps did not start")
                time.sleep(0.05)
            time.sleep(settle)
            child = int(open(f"/proc/{guard.pid}/task/{guard.pid}/children").read().split()[0])
            before, start = cpu_seconds(guard.pid), time.monotonic()
            time.sleep(seconds)
            used, elapsed = cpu_seconds(guard.pid) - before, time.monotonic() - start
            return {"maps": map_lines(child), "cpu": used, "elapsed": elapsed,
                    "rss": status_kib(guard.pid, "VmRSS"), "hwm": status_kib(guard.pid, "VmHWM")}
        finally:
            guard.send_signal(signal.SIGTERM)
            guard.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="measuring window per run")
    parser.add_argument("--interval", type=float, default=1.0, help="guard --interval")
    parser.add_argument("--maps", type=int, default=60000, help="memory maps of the watched child")
    parser.add_argument("--idle-maps", type=int, default=100, help="maps of the baseline child")
    parser.add_argument("--settle", type=float, default=3, help="seconds before measuring")
    args = parser.parse_args()
    rows = [("idle", measure(args.idle_maps, args.interval, args.seconds, args.settle)),
            ("watched", measure(args.maps, args.interval, args.seconds, args.settle))]
    print(f"guard --watch --interval {args.interval}, {args.seconds:.0f} s window, kernel {os.uname().release}")
    print(f"{'child':<8} {'maps':>7} {'cpu s':>7} {'% core':>7} {'ms/sample':>9} {'RSS MiB':>8} {'peak MiB':>8}")
    for name, r in rows:
        percent = 100 * r["cpu"] / r["elapsed"]
        per_sample = 1000 * r["cpu"] / (r["elapsed"] / args.interval)
        print(f"{name:<8} {r['maps']:>7} {r['cpu']:>7.2f} {percent:>7.2f} {per_sample:>9.2f} "
              f"{r['rss'] / 1024:>8.1f} {r['hwm'] / 1024:>8.1f}")
    idle, watched = rows[0][1], rows[1][1]
    extra = 100 * (watched["cpu"] / watched["elapsed"] - idle["cpu"] / idle["elapsed"])
    print(f"watched / idle CPU: {watched['cpu'] / max(idle['cpu'], 1 / TICKS):.1f}x; "
          f"extra for the maps: {extra:.2f} % of a core; "
          f"peak RSS watched / idle: {watched['hwm'] / idle['hwm']:.2f}x")


if __name__ == "__main__":
    main()
