"""Benchmark of guard's map scanner against the floor and the alternatives, in one interleaved run.

    .venv/bin/python bench/bench_maps.py [--quick] [--no-250k]

Per process: children holding N anonymous or file-backed mappings (tests/vma_holder.c), timed
with guard's scanner (lib.guard_maps_count, auto path), the raw floor (C read() into a buffer,
discarded), pure Python (line loop, read().count), psutil memory_maps() and `wc -l`.
Whole system: a population of a few hundred processes, timed with guard's scan, a plain
single-threaded C text scan, pure Python over every pid and psutil.
Every round runs each method once in random order; the table shows medians and the median of the
per-round ratios against the reference of the same round. The 250k case raises vm.max_map_count
for as long as the holders take to map (tests/hostsettings.py restores it in finally).
"""

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import psutil  # noqa: E402
from cffi import FFI  # noqa: E402

import hostsettings  # noqa: E402
import vmaholder  # noqa: E402
from guard import maps  # noqa: E402
from guard._maps import lib  # noqa: E402

SIZES = (100, 10_000, 60_000, 250_000)
POPULATION = {"sleep": 150, "python": 50}


def build_reference(directory):
    """Compile maps_floor.c as a cffi module, so the floor is called the way the scanner is."""
    ffi = FFI()
    ffi.cdef("long bench_read_discard(const char *); long bench_text_count(const char *);"
             "long bench_text_scan(const char *);")
    with open(os.path.join(HERE, "maps_floor.c")) as f:
        ffi.set_source("_maps_floor", f.read(), extra_compile_args=["-O2", "-msse2"])
    ffi.compile(tmpdir=directory)
    sys.path.insert(0, directory)
    import _maps_floor

    return _maps_floor.lib


def python_line_loop(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def python_read_count(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def psutil_maps(pid):
    return len(psutil.Process(pid).memory_maps(grouped=False))


def pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def each_process(count_one):
    """count_one over every process, skipping those gone or not ours (as the scanner does)."""
    total = 0
    for pid in pids():
        try:
            total += count_one(pid)
        except (OSError, psutil.Error):
            pass
    return total


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(methods, reference, rounds, sparse=()):
    """{name: [seconds per round]}; methods named in sparse run in the first 3 rounds only."""
    times = {name: [] for name in methods}
    for r in range(rounds):
        order = [n for n in methods if n not in sparse or r < 3]
        random.shuffle(order)
        for name in order:
            times[name].append(timed(methods[name]))
    ratios = {name: statistics.median(t / ref for t, ref in zip(times[name], times[reference]))
              for name in methods}
    return times, ratios


def fmt_ms(seconds):
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def print_table(title, columns, results, reference):
    """results: {column: (times, ratios, vmas)}; one row per method, median ms / ns per VMA / ratio."""
    print(f"\n### {title}\n")
    print("| method | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    names = list(next(iter(results.values()))[0])
    for name in names:
        cells = []
        for column in columns:
            times, ratios, vmas = results[column]
            median = statistics.median(times[name])
            per = f" / {median / vmas * 1e9:.0f} ns" if vmas else ""
            cells.append(f"{fmt_ms(median)} ms{per} / {ratios[name]:.2f}x")
        mark = " (reference)" if name == reference else ""
        print(f"| {name}{mark} | " + " | ".join(cells) + " |")


def per_process_methods(ref, pid):
    path = f"/proc/{pid}/maps"
    bpath = path.encode()
    broot = b"/proc"
    return {
        "floor: C read() + discard": lambda: ref.bench_read_discard(bpath),
        "guard scanner (auto)": lambda: lib.guard_maps_count(broot, pid, lib.GUARD_MAPS_AUTO),
        "guard.maps.count() (Python API)": lambda: maps.count(pid),
        "guard, text path forced": lambda: lib.guard_maps_count(broot, pid, lib.GUARD_MAPS_TEXT),
        "guard, ioctl path forced": lambda: lib.guard_maps_count(broot, pid, lib.GUARD_MAPS_IOCTL),
        "C text: read() + SSE2 count": lambda: ref.bench_text_count(bpath),
        "Python sum(1 for line)": lambda: python_line_loop(path),
        "Python read().count(b'\\n')": lambda: python_read_count(path),
        "psutil memory_maps()": lambda: psutil_maps(pid),
        "wc -l": lambda: subprocess.run(["wc", "-l", path], stdout=subprocess.DEVNULL, check=True),
    }


def check_counts(pid):
    """The scanner's count must be the text's lines less [vsyscall]; say so if not."""
    lines = python_read_count(f"/proc/{pid}/maps")
    got = maps.count(pid)
    if got not in (lines, lines - 1):
        print(f"!! pid {pid}: scanner {got}, text lines {lines}", file=sys.stderr)
    return got


def rounds_for(n, quick):
    # Small cases are quick and noisy (one run is ~20 us): many more rounds for a stable median.
    rounds = 201 if n <= 100 else 31 if n <= 10_000 else 11 if n <= 60_000 else 7
    return max(3, rounds // 3) if quick else rounds


def bench_per_process(ref, holder, workdir, sizes, quick):
    results = {kind: {} for kind in ("anon", "file")}
    with tempfile.TemporaryDirectory(dir=workdir) as files:
        for n in sizes:
            for kind in ("anon", "file"):
                args = (n, kind) if kind == "anon" else (n, kind, os.path.join(files, f"f{n}"))
                results[kind][f"N={n}"] = measure_holder(ref, holder, args, quick)
    return results


def measure_holder(ref, holder, args, quick):
    """Start a holder and time it; for more mappings than the default limit allows,
    vm.max_map_count is raised only while the holder maps (what is mapped stays mapped)."""
    n = args[0]
    raised = hostsettings.sysctl("vm.max_map_count", 2 * n + 65530) if n > 60_000 else None
    with contextlib.ExitStack() as stack:
        with raised or contextlib.nullcontext():
            proc, _ = stack.enter_context(vmaholder.holding(holder, *args))
        vmas = check_counts(proc.pid)
        methods = per_process_methods(ref, proc.pid)
        times, ratios = interleaved(methods, "floor: C read() + discard", rounds_for(n, quick),
                                    sparse=("psutil memory_maps()",))
        return times, ratios, vmas


# The Python children of a measured reference population (14,491 lines in 265 processes) mapped
# the shared libraries a service loads: they import what a typical Python service imports (TLS,
# sqlite, ctypes, compression, asyncio), ~130 maps lines each. A bare interpreter maps ~40, which
# leaves more of a scan to fixed per-process costs: --bare-python measures that population too.
SERVICE_IMPORTS = "import ssl, sqlite3, ctypes, decimal, lzma, bz2, zlib, hashlib, json, asyncio, csv, uuid"
DEFAULT_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def start_population(python, bare):
    """150 `sleep` and 50 idle Python children: the whole-system population the targets were set on."""
    code = "import sys; sys.stdin.read()" if bare else f"{SERVICE_IMPORTS}; import sys; sys.stdin.read()"
    children = [subprocess.Popen(["sleep", "3600"]) for _ in range(POPULATION["sleep"])]
    children += [subprocess.Popen([python, "-c", code],
                                  stdin=subprocess.PIPE) for _ in range(POPULATION["python"])]
    time.sleep(2)  # the Python children have imported what they import
    return children


def stop_population(children):
    for child in children:
        child.kill()
    for child in children:
        child.wait()
        if child.stdin:
            child.stdin.close()


def bench_whole_system(ref, quick, python, bare):
    children = start_population(python, bare)
    try:
        kind = "bare" if bare else "service-like"
        population = (f"{len(pids())} processes (150 sleep; 50 {kind} {python}, "
                      f"{maps.count(children[-1].pid)} maps each)")
        lines = ref.bench_text_scan(b"/proc")
        methods = {
            "C text scan, one thread": lambda: ref.bench_text_scan(b"/proc"),
            OURS: lambda: maps.scan(),
            "guard scanner, one thread": lambda: maps.scan(threads=1),
            "guard scanner, text path, default threads": lambda: maps.scan(mode="text"),
            "guard scanner, ioctl path, default threads": lambda: maps.scan(mode="ioctl"),
            "Python read().count over every pid":
                lambda: each_process(lambda pid: python_read_count(f"/proc/{pid}/maps")),
            "Python sum(1 for line) over every pid":
                lambda: each_process(lambda pid: python_line_loop(f"/proc/{pid}/maps")),
            "psutil memory_maps() over every pid": lambda: each_process(psutil_maps),
        }
        times, ratios = interleaved(methods, "C text scan, one thread", 7 if quick else 21,
                                    sparse=() if not quick else ("psutil memory_maps() over every pid",))
    finally:
        stop_population(children)
    return population, lines, times, ratios


OURS = "guard maps.scan() (auto, default threads)"


def print_whole_system(population, lines, times, ratios):
    print(f"\n### Whole system: {population}, {lines} maps lines\n")
    print("| method | median ms | min ms | ratio vs C text scan (paired) | guard is faster by |")
    print("|---|---|---|---|---|")
    ours = statistics.median(times[OURS])
    for name, t in times.items():
        print(f"| {name} | {fmt_ms(statistics.median(t))} | {fmt_ms(min(t))} | "
              f"{ratios[name]:.2f}x | {statistics.median(t) / ours:.1f}x |")


def print_targets(whole, results, sizes):
    """The issue's targets against this run's medians (the parts that were run)."""
    rows = []
    for kind, bound in (("anon", 1.05), ("file", 0.80)) if results else ():
        rows += [(f"per process, {kind}, N={n}: <= {bound:.2f}x floor",
                  results[kind][f"N={n}"][1]["guard scanner (auto)"], bound, "le") for n in sizes]
    if whole:
        _, _, times, ratios = whole
        ours = statistics.median(times[OURS])
        speedup = {name: statistics.median(t) / ours for name, t in times.items()}
        best_python = min(speedup[n] for n in speedup if n.startswith("Python"))
        rows += [("whole system: <= 0.45x one-thread C text scan", ratios[OURS], 0.45, "le"),
                 ("whole system: >= 2.5x faster than the best pure Python", best_python, 2.5, "ge"),
                 ("whole system: >= 30x faster than psutil",
                  speedup["psutil memory_maps() over every pid"], 30, "ge")]
    print("\n### Targets\n")
    print("| target | this run | met |")
    print("|---|---|---|")
    for what, value, bound, how in rows:
        met = value <= bound if how == "le" else value >= bound
        print(f"| {what} | {value:.2f}x | {'yes' if met else 'no'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-250k", action="store_true", help="leave out N=250000")
    parser.add_argument("--part", choices=("all", "system", "process"), default="all",
                        help="the whole-system scan, the per-process counts, or both")
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help=f"interpreter of the population's 50 Python children (default {DEFAULT_PYTHON})")
    parser.add_argument("--bare-python", action="store_true",
                        help="the Python children import nothing (a population of small processes)")
    args = parser.parse_args()
    sizes = SIZES[:-1] if args.no_250k else SIZES
    workdir = tempfile.mkdtemp(prefix="guard-bench-")
    try:
        ref = build_reference(workdir)
        holder = vmaholder.build(workdir)
        print(f"# guard map scanner benchmark: {os.uname().release}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
        whole = results = None
        if args.part in ("all", "system"):
            whole = bench_whole_system(ref, args.quick, args.python, args.bare_python)
            print_whole_system(*whole)
        if args.part in ("all", "process"):
            results = bench_per_process(ref, holder, workdir, sizes, args.quick)
            columns = [f"N={n}" for n in sizes]
            print_table("Per process, anonymous VMAs: median / per VMA / ratio vs floor (paired)",
                        columns, results["anon"], "floor: C read() + discard")
            print_table("Per process, file-backed VMAs: median / per VMA / ratio vs floor (paired)",
                        columns, results["file"], "floor: C read() + discard")
        print_targets(whole, results, sizes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open("/proc/sys/vm/max_map_count") as f:
        print(f"\nvm.max_map_count after the run: {f.read().strip()}")


if __name__ == "__main__":
    main()
