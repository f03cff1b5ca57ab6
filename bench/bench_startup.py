"""What guard adds to a program's start, against the bare interpreter it runs on.

    .venv/bin/python bench/bench_startup.py [--rounds 60] [--bundle | --bundle-dir DIR]

Times, interleaved in random order (each command once per round), from exec to exit:

- the floor: `true` alone, and behind tini and dumb-init (the inits users already put in front);
- the bare interpreter: `python -I -S -c pass`, the interpreter .venv's guard runs on;
- the pip-installed guard (.venv/bin/guard): `guard check --profile elasticsearch` (the check) and
  `guard --mode warn --profile redis -- true` (the prefix, up to and through the exec), and the
  check again with an elasticsearch.yml to read, as in Elasticsearch's image (PyYAML's import);
- with --bundle (as root: builds it with `docker build --target bundle` from the local base, as
  bench/bench_bundle.py does) or --bundle-dir (a copied /opt/guard): the same two commands from the
  bundle, mounted at /opt/guard in a private mount namespace so nothing on the host changes, and
  the bare interpreter the bundle was built from (Debian's /usr/bin/python3, the same build as the
  base image's, when this host is Debian 12).

Prints medians and each guard command's ratio to its bare interpreter: the median of the
per-round ratios, so both sides of a ratio ran within the same second. Targets (issue 15): at
most 2x, for the check and the prefix, pip-installed and bundle.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_bundle  # noqa: E402  (its timer and its build steps)

GUARD = os.path.join(os.path.dirname(sys.executable), "guard")
CHECK = ["check", "--profile", "elasticsearch"]
PREFIX = ["--mode", "warn", "--profile", "redis", "--", "true"]
TARGET = 2.0

def variants(bundle, conf):
    runs = {"true alone": ["true"]}
    for init, argv in (("tini", ["tini", "--", "true"]), ("dumb-init", ["dumb-init", "true"])):
        if shutil.which(init):
            runs[f"{init} -- true"] = argv
    python = os.path.realpath(sys.executable)
    runs["pip: bare interpreter"] = [python, "-I", "-S", "-c", "pass"]
    runs["pip: guard check"] = [GUARD, *CHECK]
    runs["pip: guard -- true"] = [GUARD, *PREFIX]
    # As in Elasticsearch's image, with an elasticsearch.yml to read (PyYAML) naming network.host.
    runs["pip: guard check, yml"] = ["env", f"ES_PATH_CONF={conf}", GUARD, *CHECK]
    if bundle:
        runs["bundle: bare interpreter"] = ["/usr/bin/python3", "-I", "-S", "-c", "pass"]
        runs["bundle: guard check"] = ["/opt/guard/bin/guard", *CHECK]
        runs["bundle: guard -- true"] = ["/opt/guard/bin/guard", *PREFIX]
    return runs


def built_bundle(work):
    """Build the bundle as users do and copy /opt/guard out of it (bench_bundle's steps)."""
    tag = f"{bench_bundle.TAG}-bundle"
    bench_bundle.build_bundle(tag, bench_bundle.BASE)
    try:
        return bench_bundle.extract_bundle(tag, os.path.join(work, "amd64"))
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--bundle", action="store_true", help="build the bundle and time it too (root)")
    parser.add_argument("--bundle-dir", help="time this copy of /opt/guard too (root)")
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="guard-bench-")
    try:
        bundle = options.bundle_dir or (built_bundle(work) if options.bundle else "")
        conf = os.path.join(work, "config")
        os.mkdir(conf)
        with open(os.path.join(conf, "elasticsearch.yml"), "w") as f:
            f.write("cluster.name: bench\nnetwork.host: 0.0.0.0\n")
        runs = variants(bundle, conf)
        # The bundle's runs with it mounted at /opt/guard (a private mount namespace, as root).
        times = bench_bundle.time_startup(
            {name: (bundle if name.startswith("bundle:") else None, argv) for name, argv in runs.items()},
            options.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(times["true alone"])
    print(f"{options.rounds} interleaved rounds; ratio: median of per-round ratios to the bare interpreter\n")
    print(f"{'command':<28} {'median ms':>10} {'added ms':>9} {'ratio':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        kind = name.split(":")[0]
        ratio = ""
        if ": guard" in name:
            bare = times[f"{kind}: bare interpreter"]  # (env adds its own exec to the yml run)
            ratio = f"{statistics.median(g / b for g, b in zip(samples, bare)):.2f}x"
        print(f"{name:<28} {median * 1000:>10.2f} {(median - floor) * 1000:>9.2f} {ratio:>7}")
    print(f"\ntarget: each guard command at most {TARGET:g}x its bare interpreter")


if __name__ == "__main__":
    main()
