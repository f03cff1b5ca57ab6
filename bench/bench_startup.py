"""What guard adds to a container's start: the time from exec to the program running.

Runs, interleaved in random order, `true` alone, behind tini and dumb-init (inits users already
put in front of programs), and behind guard with the redis and elasticsearch profiles (every
check read, then exec). Prints medians and the difference to `true` alone.

    python bench/bench_startup.py [--rounds 60]
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

GUARD = os.path.join(os.path.dirname(sys.executable), "guard")


def variants():
    found = {"true alone": ["true"]}
    for init, argv in (("tini", ["tini", "--", "true"]), ("dumb-init", ["dumb-init", "true"])):
        if shutil.which(init):
            found[f"{init} -- true"] = argv
    found["guard (redis profile) -- true"] = [GUARD, "--mode", "warn", "--profile", "redis", "--", "true"]
    found["guard (elasticsearch) -- true"] = [GUARD, "--mode", "warn", "--profile", "elasticsearch", "--", "true"]
    found["guard --quiet (redis) -- true"] = [GUARD, "--quiet", "--mode", "warn", "--profile", "redis", "--", "true"]
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    rounds = parser.parse_args().rounds
    runs = variants()
    times = {name: [] for name in runs}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    for _ in range(rounds):
        order = list(runs)
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            subprocess.run(runs[name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["true alone"])
    print(f"{'command':<34} {'median ms':>10} {'added ms':>9}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<34} {median * 1000:>10.2f} {(median - base) * 1000:>9.2f}")


if __name__ == "__main__":
    main()
