"""The bundle against the pip-installed guard: start-up time, size, and what each adds to an image.

    .venv/bin/python bench/bench_bundle.py [--rounds 40] [--no-apt]

As root, after scripts/test (which leaves the Docker engine, the base images and .venv):

1. builds the bundle as users do (`docker build --target bundle`, on the local Debian base) and
   copies /opt/guard out of it;
2. times, interleaved in random order, `guard check --profile elasticsearch` from the bundle and
   from .venv (pip-installed, the same Python minor version), and `true` as the floor. The
   bundle runs at its fixed path /opt/guard inside a private mount namespace (unshare -m with a
   tmpfs over /opt), so nothing on the host is written;
3. measures the bundle's size on disk, and what each way of putting guard into a vendor image adds
   to it: COPY of the bundle, against today's apt approach (python3, its headers and gcc from
   Debian's mirror, then pip install), both built over the same Redis image with no Python.
   --no-apt leaves the second build out (it needs Debian's mirror).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BASE = os.environ.get("TEST_BASE_IMAGE", "guard-base:bookworm")
TARGET = "guard-target:bookworm-nopython"  # Redis, no Python (scripts/base-image)
PIP_GUARD = os.path.join(os.path.dirname(sys.executable), "guard")
TAG = f"guard-bench-{os.getpid()}"

# Today's approach at its leanest, as compose/elasticsearch/Dockerfile did it before the bundle:
# a Python, its headers and a compiler installed into the vendor image, guard built there, and
# the build-only packages purged in the same layer.
APT_DOCKERFILE = """\
ARG TARGET_IMAGE
FROM ${TARGET_IMAGE}
COPY . /tmp/guard-src
RUN set -eu; apt-get update; \\
    apt-get install -y --no-install-recommends python3-venv python3-dev python3-cffi python3-yaml \\
        python3-setuptools python3-wheel gcc libc6-dev; \\
    python3 -m venv --system-site-packages /opt/guard; \\
    /opt/guard/bin/pip install --no-cache-dir --no-index --no-build-isolation /tmp/guard-src; \\
    apt-get purge -y --auto-remove python3-dev gcc libc6-dev; \\
    rm -rf /var/lib/apt/lists/* /tmp/guard-src
"""
BUNDLE_DOCKERFILE = """\
ARG BUNDLE_IMAGE
ARG TARGET_IMAGE
FROM ${BUNDLE_IMAGE} AS guard
FROM ${TARGET_IMAGE}
COPY --from=guard /opt/guard /opt/guard
"""

# Run inside the private mount namespace: the bundle is mounted at /opt/guard there only.
TIMER = r"""
import json, os, random, statistics, subprocess, sys, time
bundle_dir, runs, rounds = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
subprocess.run(["mount", "-t", "tmpfs", "none", "/opt"], check=True)
os.mkdir("/opt/guard")
subprocess.run(["mount", "--bind", bundle_dir, "/opt/guard"], check=True)
env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
times = {name: [] for name in runs}
for _ in range(rounds):
    order = list(runs)
    random.shuffle(order)
    for name in order:
        start = time.perf_counter()
        subprocess.run(runs[name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - start)
print(json.dumps(times))
"""


def docker(*args, **kwargs):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, **kwargs).stdout


def build(dockerfile_text, context, tag, **buildargs):
    path = os.path.join(tempfile.mkdtemp(), "Dockerfile")
    with open(path, "w") as f:
        f.write(dockerfile_text)
    args = [a for k, v in buildargs.items() for a in ("--build-arg", f"{k}={v}")]
    docker("build", "-q", "--network", "host", "-f", path, "-t", tag, *args, context)
    shutil.rmtree(os.path.dirname(path))
    return tag


def image_size(tag):
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag))


def extract_bundle(image, into):
    container = docker("create", image).strip()
    try:
        tar = subprocess.run(["docker", "cp", f"{container}:/opt/guard", "-"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", into], input=tar, check=True)
    finally:
        docker("rm", container)
    return os.path.join(into, "guard")


def disk_usage(folder):
    apparent = sum(os.path.getsize(os.path.join(p, n)) for p, _, names in os.walk(folder) for n in names
                   if not os.path.islink(os.path.join(p, n)))
    blocks = int(subprocess.run(["du", "-sk", folder], check=True, capture_output=True, text=True).stdout.split()[0])
    return apparent, blocks * 1024


def time_startup(bundle_dir, rounds):
    check = ["check", "--profile", "elasticsearch"]
    runs = {"true": ["true"], "bundle": ["/opt/guard/bin/guard", *check], "pip": [PIP_GUARD, *check]}
    out = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", TIMER,
                          bundle_dir, json.dumps(runs), str(rounds)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-apt", action="store_true", help="do not build the apt approach")
    options = parser.parse_args()
    made = []
    work = tempfile.mkdtemp(prefix="guard-bench-")
    try:
        started = time.monotonic()
        docker("build", "-q", "--network", "host", "--target", "bundle", "--build-arg", f"BASE={BASE}",
               "-t", f"{TAG}-bundle", REPO)
        made.append(f"{TAG}-bundle")
        print(f"bundle built in {time.monotonic() - started:.0f} s (from {BASE})")
        bundle_dir = extract_bundle(f"{TAG}-bundle", work)

        times = time_startup(bundle_dir, options.rounds)
        medians = {name: statistics.median(samples) for name, samples in times.items()}
        ratios = [b / p for b, p in zip(times["bundle"], times["pip"])]
        print(f"\nguard check --profile elasticsearch, {options.rounds} interleaved rounds")
        print(f"{'':<26} {'median ms':>10} {'min ms':>8}")
        for name, label in (("true", "true (floor)"), ("pip", "pip-installed (.venv)"), ("bundle", "bundle")):
            print(f"{label:<26} {medians[name] * 1000:>10.1f} {min(times[name]) * 1000:>8.1f}")
        print(f"bundle / pip-installed: {statistics.median(ratios):.2f}x (median of per-round ratios; target <= 1.5x)")

        apparent, on_disk = disk_usage(bundle_dir)
        print(f"\nbundle size: {apparent / 1e6:.1f} MB of files, {on_disk / 1e6:.1f} MB on disk (target <= 25 MB)")
        print(f"bundle image (FROM scratch): {image_size(f'{TAG}-bundle') / 1e6:.1f} MB")

        target = image_size(TARGET)
        copied = build(BUNDLE_DOCKERFILE, work, f"{TAG}-copied", BUNDLE_IMAGE=f"{TAG}-bundle", TARGET_IMAGE=TARGET)
        made.append(copied)
        print(f"\nadded to {TARGET} ({target / 1e6:.0f} MB, Redis, no Python):")
        print(f"  COPY --from=guard:bundle /opt/guard         +{(image_size(copied) - target) / 1e6:.1f} MB")
        if options.no_apt:
            print("  apt-get python3 python3-dev gcc + pip        not measured (--no-apt)")
            return
        try:
            apt = build(APT_DOCKERFILE, REPO, f"{TAG}-apt", TARGET_IMAGE=TARGET)
        except subprocess.CalledProcessError as e:
            print(f"  apt-get python3, headers, gcc; pip; purge   not measured: the build failed ({e.stderr.strip()[-200:]})")
            return
        made.append(apt)
        print(f"  apt-get python3, headers, gcc; pip; purge   +{(image_size(apt) - target) / 1e6:.1f} MB")
    finally:
        for tag in made:
            subprocess.run(["docker", "rmi", tag], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
