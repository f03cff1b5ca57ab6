"""What guard --watch costs: CPU time and memory of guard watching a child with many memory maps.

Starts `guard --watch --interval I -- python -c WORKLOAD N` for a child with N memory maps (60k,
and 100 as the idle baseline), waits until the child has mapped them and guard has settled, then
reads guard's utime + stime (/proc/PID/stat) over a window and its peak RSS (VmHWM).

    .venv/bin/python bench/bench_watch.py [--seconds 30] [--interval 1] [--maps 60000]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from guard import maps

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


def samples_taken(metrics_file):
    with open(metrics_file) as f:
        for line in f:
            if line.startswith("guard_watch_samples_total "):
                return int(line.split()[1])
    return 0


def count_ms(pid):
    """The scanner alone counting the child once, median of 5, in this process: the floor of a sample."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        maps.count(pid)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def map_lines(pid):
    with open(f"/proc/{pid}/maps", "rb") as f:
        return f.read().count(b"\n")


def measure(count, interval, seconds, settle):
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        metrics = os.path.join(tmp, "guard.prom")
        guard_script = os.path.join(os.path.dirname(sys.executable), "guard")  # the installed guard
        command = [guard_script, "--quiet", "--watch", "--interval", str(interval),
                   "--metrics-file", metrics, "--", sys.executable, "-c", WORKLOAD, str(count), ready]
        guard = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not os.path.exists(ready):
                if guard.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the workload with {count} maps did not start")
                time.sleep(0.05)
            time.sleep(settle)
            child = int(open(f"/proc/{guard.pid}/task/{guard.pid}/children").read().split()[0])
            before, start, taken = cpu_seconds(guard.pid), time.monotonic(), samples_taken(metrics)
            time.sleep(seconds)
            used, elapsed = cpu_seconds(guard.pid) - before, time.monotonic() - start
            taken = samples_taken(metrics) - taken
            return {"maps": map_lines(child), "cpu": used, "elapsed": elapsed, "samples": taken,
                    "count_ms": count_ms(child),
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
    print(f"guard --watch --interval {args.interval} (default --watch-cpu), {args.seconds:.0f} s window, "
          f"kernel {os.uname().release}, load {os.getloadavg()[0]:.1f}")
    print(f"{'child':<8} {'maps':>7} {'% core':>7} {'samples':>7} {'every s':>7} {'ms/sample':>9} "
          f"{'count ms':>8} {'RSS MiB':>8} {'peak MiB':>8}")
    for name, r in rows:
        percent = 100 * r["cpu"] / r["elapsed"]
        samples = max(r["samples"], 1)
        print(f"{name:<8} {r['maps']:>7} {percent:>7.2f} {r['samples']:>7} {r['elapsed'] / samples:>7.2f} "
              f"{1000 * r['cpu'] / samples:>9.2f} {r['count_ms']:>8.2f} {r['rss'] / 1024:>8.1f} {r['hwm'] / 1024:>8.1f}")
    idle, watched = rows[0][1], rows[1][1]
    print(f"watched: {100 * watched['cpu'] / watched['elapsed']:.2f} % of one core (target <= 2 %); "
          f"peak RSS {watched['hwm'] / 1024:.1f} MiB (target <= 20 MiB); "
          f"a sample costs {1000 * watched['cpu'] / max(watched['samples'], 1) / watched['count_ms']:.2f}x "
          f"the scanner's bare count of the same child; peak RSS watched / idle "
          f"{watched['hwm'] / idle['hwm']:.2f}x")


if __name__ == "__main__":
    main()
