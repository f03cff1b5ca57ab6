"""The bundle against the pip-installed guard: start-up time, size, and what each adds to an image;
and the arm64 bundle beside the amd64 one, under emulation.

    .venv/bin/python bench/bench_bundle.py [--rounds 40] [--no-apt] [--no-arm64]

As root, after scripts/test (which leaves the Docker engine, the base images and .venv):

1. builds the bundle as users do (`docker build --target bundle`, on the local Debian base), and
   the arm64 one (`docker build --platform linux/arm64 --target bundle`, on the arm64 base, under
   QEMU: the script holds scripts/arm64-emulation while it runs), and copies /opt/guard out of both;
2. times, interleaved in random order, `guard check --profile elasticsearch` from the bundle and
   from .venv (pip-installed, the same Python minor version), and `true` as the floor. Each
   bundle runs at its fixed path /opt/guard inside a private mount namespace (unshare -m with a
   tmpfs over /opt; the bind mount is switched between runs, outside the timing), so nothing on
   the host is written. Emulated, and labelled so: libexec/guard of each bundle under QEMU's
   user mode for its architecture (qemu-x86_64 for amd64, qemu-aarch64 for arm64: the same
   emulator, the same way in, the only like-for-like comparison this x86-64 machine allows), and
   the arm64 bin/guard as an arm64 image runs it here (binfmt_misc, both of its programs
   emulated). Emulated times say nothing about arm64 hardware; their ratio to the amd64 bundle
   under the same emulation is what compares the two builds;
3. measures each bundle's size on disk, and what each way of putting guard into a vendor image
   adds to it: COPY of the bundle, against today's apt approach (python3, its headers and gcc from
   Debian's mirror, then pip install), both built over the same Redis image with no Python.
   --no-apt leaves the second build out (it needs Debian's mirror); --no-arm64 leaves out all of
   arm64.
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
BASE_ARM64 = os.environ.get("TEST_BASE_IMAGE_ARM64", "guard-base:bookworm-arm64")
TARGET_ARM64 = "guard-target:bookworm-nopython-arm64"
EMULATION = os.path.join(REPO, "scripts", "arm64-emulation")
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

# Runs the rounds. With a bundle, inside a private mount namespace: a bundle is mounted at
# /opt/guard there only, the one a run needs, switched before its clock starts.
TIMER = r"""
import json, os, random, statistics, subprocess, sys, time
runs, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
if any(bundle_dir for bundle_dir, _ in runs.values()):
    subprocess.run(["mount", "-t", "tmpfs", "none", "/opt"], check=True)
    os.mkdir("/opt/guard")
mounted = None
env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
times = {name: [] for name in runs}
for _ in range(rounds):
    order = list(runs)
    random.shuffle(order)
    for name in order:
        bundle_dir, command = runs[name]
        if bundle_dir and bundle_dir != mounted:
            if mounted:
                subprocess.run(["umount", "/opt/guard"], check=True)
            subprocess.run(["mount", "--bind", bundle_dir, "/opt/guard"], check=True)
            mounted = bundle_dir
        start = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - start)
print(json.dumps(times))
"""


def docker(*args, **kwargs):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, **kwargs).stdout


def build(dockerfile_text, context, tag, platform=None, **buildargs):
    path = os.path.join(tempfile.mkdtemp(), "Dockerfile")
    with open(path, "w") as f:
        f.write(dockerfile_text)
    args = [a for k, v in buildargs.items() for a in ("--build-arg", f"{k}={v}")]
    if platform:
        args += ["--platform", platform]
    docker("build", "-q", "--network", "host", "-f", path, "-t", tag, *args, context)
    shutil.rmtree(os.path.dirname(path))
    return tag


def image_size(tag):
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag))


def build_bundle(tag, base, platform=None):
    """docker build --target bundle as the README gives it; seconds it took."""
    started = time.monotonic()
    docker("build", "-q", "--network", "host", "--target", "bundle", "--build-arg", f"BASE={base}",
           *(["--platform", platform] if platform else []), "-t", tag, REPO)
    return time.monotonic() - started


def extract_bundle(image, into):
    os.makedirs(into)
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


def time_startup(runs, rounds):
    """runs: {name: (bundle folder to mount at /opt/guard or None, argv)}: {name: [seconds]},
    interleaved in random order, each run once per round. A bundle takes root (unshare -m)."""
    timer = [sys.executable, "-c", TIMER, json.dumps(runs), str(rounds)]
    if any(bundle_dir for bundle_dir, _ in runs.values()):
        timer = ["unshare", "-m", "--propagation", "private", *timer]
    return json.loads(subprocess.run(timer, check=True, capture_output=True, text=True).stdout)


def ratio(times, name, reference):
    """The median of per-round ratios: both were timed in the same round, side by side."""
    return statistics.median(a / b for a, b in zip(times[name], times[reference]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-apt", action="store_true", help="do not build the apt approach")
    parser.add_argument("--no-arm64", action="store_true", help="leave the arm64 bundle out")
    options = parser.parse_args()
    arm64 = not options.no_arm64
    made = []
    work = tempfile.mkdtemp(prefix="guard-bench-")
    if arm64:
        subprocess.run([EMULATION, "hold", str(os.getpid())], check=True)
    try:
        built_in = build_bundle(f"{TAG}-bundle", BASE)
        made.append(f"{TAG}-bundle")
        print(f"bundle built in {built_in:.0f} s (from {BASE})")
        bundle_dir = extract_bundle(f"{TAG}-bundle", os.path.join(work, "amd64"))
        check = ["check", "--profile", "elasticsearch"]
        runs = {"true": (None, ["true"]), "pip": (None, [PIP_GUARD, *check]),
                "bundle": (bundle_dir, ["/opt/guard/bin/guard", *check])}
        labels = {"true": "true (floor)", "pip": "pip-installed (.venv)", "bundle": "bundle"}
        if arm64:
            built_in = build_bundle(f"{TAG}-bundle-arm64", BASE_ARM64, "linux/arm64")
            made.append(f"{TAG}-bundle-arm64")
            print(f"arm64 bundle built in {built_in:.0f} s (from {BASE_ARM64}, emulated)")
            arm64_dir = extract_bundle(f"{TAG}-bundle-arm64", os.path.join(work, "arm64"))
            runs.update({
                "amd64-qemu": (bundle_dir, ["qemu-x86_64-static", "/opt/guard/libexec/guard", *check]),
                "arm64-qemu": (arm64_dir, ["qemu-aarch64-static", "/opt/guard/libexec/guard", *check]),
                "arm64-binfmt": (arm64_dir, ["/opt/guard/bin/guard", *check]),
            })
            labels.update({"amd64-qemu": "EMULATED amd64 bundle, libexec/guard under qemu-x86_64",
                           "arm64-qemu": "EMULATED arm64 bundle, libexec/guard under qemu-aarch64",
                           "arm64-binfmt": "EMULATED arm64 bundle, bin/guard through binfmt_misc"})

        times = time_startup(runs, options.rounds)
        width = max(map(len, labels.values())) + 2
        print(f"\nguard check --profile elasticsearch, {options.rounds} interleaved rounds")
        print(f"{'':<{width}} {'median ms':>10} {'min ms':>8}")
        for name, label in labels.items():
            print(f"{label:<{width}} {statistics.median(times[name]) * 1000:>10.1f} {min(times[name]) * 1000:>8.1f}")
        print(f"bundle / pip-installed: {ratio(times, 'bundle', 'pip'):.2f}x (median of per-round ratios; target <= 1.5x)")
        if arm64:
            print(f"arm64 / amd64 bundle, both under QEMU user emulation (qemu-aarch64 / qemu-x86_64): "
                  f"{ratio(times, 'arm64-qemu', 'amd64-qemu'):.2f}x (median of per-round ratios)")
            print("  emulated times are QEMU's on this x86-64 machine, not arm64 hardware's")

        folders = {"bundle": bundle_dir, **({"arm64 bundle": arm64_dir} if arm64 else {})}
        print()
        for label, folder in folders.items():
            apparent, on_disk = disk_usage(folder)
            print(f"{label + ' size:':<19} {apparent / 1e6:.1f} MB of files, {on_disk / 1e6:.1f} MB on disk (target <= 25 MB)")
        print(f"bundle image (FROM scratch): {image_size(f'{TAG}-bundle') / 1e6:.1f} MB")
        if arm64:
            print(f"arm64 bundle image (FROM scratch): {image_size(f'{TAG}-bundle-arm64') / 1e6:.1f} MB")

        for target, bundle, platform in ((TARGET, f"{TAG}-bundle", None),
                                         *([(TARGET_ARM64, f"{TAG}-bundle-arm64", "linux/arm64")] if arm64 else [])):
            size = image_size(target)
            copied = build(BUNDLE_DOCKERFILE, work, f"{TAG}-copied-{len(made)}", platform,
                           BUNDLE_IMAGE=bundle, TARGET_IMAGE=target)
            made.append(copied)
            print(f"\nadded to {target} ({size / 1e6:.0f} MB, Redis, no Python):")
            source = "guard:bundle-arm64" if platform else "guard:bundle"  # the README's tags
            print(f"  {f'COPY --from={source} /opt/guard':<43} +{(image_size(copied) - size) / 1e6:.1f} MB")
            if platform:
                continue
            if options.no_apt:
                print("  apt-get python3 python3-dev gcc + pip        not measured (--no-apt)")
                continue
            try:
                apt = build(APT_DOCKERFILE, REPO, f"{TAG}-apt", TARGET_IMAGE=TARGET)
            except subprocess.CalledProcessError as e:
                print(f"  apt-get python3, headers, gcc; pip; purge   not measured: the build failed "
                      f"({e.stderr.strip()[-200:]})")
                continue
            made.append(apt)
            print(f"  apt-get python3, headers, gcc; pip; purge   +{(image_size(apt) - size) / 1e6:.1f} MB")
    finally:
        for tag in made:
            subprocess.run(["docker", "rmi", tag], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        if arm64:
            subprocess.run([EMULATION, "release", str(os.getpid())], check=True)


if __name__ == "__main__":
    main()
