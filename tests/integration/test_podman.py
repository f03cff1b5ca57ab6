"""The bundle under Podman (Debian 12's podman 4.3), rootful and rootless: guard recognises where it
runs from what it sees there and prints Podman's fix, execs the program as PID 1, and ends with
the child's code when `podman stop` reaches guard --watch.

The image is the bundle copied into the image with no Python, built on the local Docker engine
and handed over with `docker save | podman load` (there is no registry). Containers run with
--network none (no bridge network may be made here) and with explicit limits: Podman's default
nofile and nproc are 1048576, which root on these machines cannot give (its bounding set lacks
CAP_SYS_RESOURCE, so runc's setrlimit past the hard limit fails: "error setting rlimit type 7:
operation not permitted"). Rootless Podman runs as a user the tests make and remove, with
newuidmap from Debian's uidmap. Every container, image and user made here is removed by id or
name in finally; the host's vm.max_map_count goes through tests/hostsettings.py.
"""

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time

import pytest
from containers import EXIT_REFUSED, IMAGES, NO_PYTHON_IMAGE, unavailable
from hostsettings import sysctl

GUARD = "/opt/guard/bin/guard"
# What root on these machines can give a container (above).
LIMITS = ["--ulimit", "nofile=1024:4096", "--ulimit", "nproc=4096:4096"]
# The rootless tests' user is this run's own, named after its pid: runs in other worktrees share
# the machine, and one that took another's name removed that run's user and killed its processes.
ROOTLESS_USER_PREFIX = "guard-rootless-"
ROOTLESS_USER = f"{ROOTLESS_USER_PREFIX}{os.getpid()}"
REDIS = ["redis-server", "--dir", "/data", "--save", "", "--appendonly", "no"]
TRAPS_TERM = ["sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"]


class Podman:
    """podman as root, or as a user (runuser, with the user's own HOME and a runtime folder):
    what it creates is remembered and removed by id."""

    def __init__(self, user=None, runtime_dir=None):
        self.user, self.runtime_dir = user, runtime_dir or tempfile.mkdtemp(prefix="guard-podman-")
        self.containers, self.images = [], []

    def command(self, *args):
        return self.as_user("podman", *args)

    def as_user(self, *command):
        """command as the user podman runs as."""
        if self.user is None:
            return list(command)
        home = pwd.getpwnam(self.user).pw_dir
        return ["runuser", "-u", self.user, "--", "env", f"HOME={home}", f"XDG_RUNTIME_DIR={self.runtime_dir}",
                *command]

    def run(self, *args, check=True, timeout=180, **options):
        done = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, **options)
        if check and done.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed ({done.returncode}): {done.stderr}", pytrace=False)
        return done

    def load(self, docker_image):
        """docker save IMAGE | podman load: the image's id in Podman's store."""
        archive = os.path.join(self.runtime_dir, "image.tar")
        subprocess.run(["docker", "save", "-o", archive, docker_image], check=True, timeout=300)
        os.chmod(archive, 0o644)
        try:
            loaded = self.run("load", "-i", archive).stdout
        finally:
            os.unlink(archive)
        name = re.search(r"Loaded image(?:\(s\))?: ([^,\s]+)", loaded).group(1)
        image = self.run("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        self.images.append(image)
        return image

    def container(self, image, *command, options=(), detach=True):
        """podman run; the container's id (detached) or (exit code, stdout, stderr)."""
        cidfile = os.path.join(self.runtime_dir, f"cid-{len(self.containers)}-{time.monotonic_ns()}")
        args = ["run", "--cidfile", cidfile, "--network", "none", *options, image, *command]
        try:
            done = self.run(*(args[:1] + ["--detach"] + args[1:] if detach else args), check=detach)
        finally:
            with contextlib.suppress(FileNotFoundError):
                with open(cidfile) as f:
                    self.containers.append(f.read().strip())
                os.unlink(cidfile)
        return self.containers[-1] if detach else (done.returncode, done.stdout, done.stderr)

    def exec(self, container, *command):
        done = self.run("exec", container, *command, check=False)
        return done.returncode, done.stdout.strip()

    def logs(self, container):
        done = self.run("logs", container)
        return done.stdout + done.stderr

    def wait_for_log(self, container, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.logs(container)
            if text in log:
                return log
            time.sleep(0.2)
        pytest.fail(f"[{text}] not in the log of {container}:\n{self.logs(container)}", pytrace=False)

    def stop(self, container):
        """podman stop (SIGTERM, SIGKILL after 10 s): the container's exit code and the seconds it took."""
        started = time.monotonic()
        self.run("stop", "--time", "10", container)
        took = time.monotonic() - started
        return int(self.run("inspect", "--format", "{{.State.ExitCode}}", container).stdout), took

    def remove(self):
        while self.containers:
            self.run("rm", "--force", self.containers.pop(), check=False)
        while self.images:
            self.run("rmi", "--force", self.images.pop(), check=False)


def _working(podman, image, *options):
    """None when podman runs a container of image here, else what it said."""
    done = podman.run("run", "--rm", "--network", "none", *options, image, "true", check=False)
    return None if done.returncode == 0 else done.stderr.strip()


@pytest.fixture(scope="session")
def bundled_image(made, bundle_image):
    """The bundle copied into the image with no Python (test_bundle.py's no-python case)."""
    return made.build("bundled-no-python", os.path.join(IMAGES, "bundled"), BUNDLE_IMAGE=bundle_image,
                      TARGET_IMAGE=NO_PYTHON_IMAGE)


@pytest.fixture(scope="session")
def rootful(bundled_image):
    """(podman as root, the image's id in its store)."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed (scripts/install-deps installs Debian's)")
    podman = Podman()
    try:
        image = podman.load(bundled_image)
        problem = _working(podman, image, *LIMITS)
        if problem:
            unavailable(f"rootful podman cannot run a container here: {problem}")
        yield podman, image
    finally:
        podman.remove()
        shutil.rmtree(podman.runtime_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _remove_podman_containers_after_each_test(request):
    yield
    for fixture in ("rootful", "rootless"):
        if fixture in request.fixturenames:
            podman = request.getfixturevalue(fixture)[0]
            while podman.containers:
                podman.run("rm", "--force", podman.containers.pop(), check=False)


def _make_user(name):
    """A user with subordinate ids for its user namespace (useradd adds them on Debian; where it
    does not, a range above every range given)."""
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    for table, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        with open(table) as f:
            ranges = [line.strip().split(":") for line in f if line.strip()]
        if not any(entry[0] == name for entry in ranges):
            start = max([100000] + [int(entry[1]) + int(entry[2]) for entry in ranges])
            subprocess.run(["usermod", flag, f"{start}-{start + 65535}", name], check=True, capture_output=True)


def left_by_ended_runs(names):
    """The rootless users of runs that are gone (killed before their teardown): a live pid's user
    is another run's, and stays."""
    return [name for name in names if name.startswith(ROOTLESS_USER_PREFIX)
            and name[len(ROOTLESS_USER_PREFIX):].isdigit()
            and not os.path.exists(f"/proc/{name[len(ROOTLESS_USER_PREFIX):]}")]


def _remove_user(name, runtime_dir):
    """Podman's rootless pause process holds the user's namespace after the last container: it
    and any other process of the user were started by these tests, and go by their pids."""
    listed = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True).stdout.split()
    for pid in listed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), 9)
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-u", name], capture_output=True).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rootless(bundled_image):
    """(podman as an unprivileged user, the image's id in that user's store)."""
    if shutil.which("podman") is None or shutil.which("newuidmap") is None:
        unavailable("podman or newuidmap (Debian's uidmap) is not installed (scripts/install-deps installs them)")
    if os.geteuid() != 0:
        unavailable("the rootless Podman tests make their own user: they need root")
    for name in left_by_ended_runs(entry.pw_name for entry in pwd.getpwall()):
        _remove_user(name, "/nonexistent")
    _make_user(ROOTLESS_USER)
    runtime_dir = tempfile.mkdtemp(prefix="guard-podman-rootless-")
    user = pwd.getpwnam(ROOTLESS_USER)
    os.chown(runtime_dir, user.pw_uid, user.pw_gid)
    podman = Podman(ROOTLESS_USER, runtime_dir)
    try:
        image = podman.load(bundled_image)
        # Rootless Podman runs here (user namespaces allowed, newuidmap present, storage vfs):
        # measured on these machines. Where it cannot, the reason is Podman's own words.
        problem = _working(podman, image)
        if problem:
            unavailable(f"rootless podman cannot run a container here: {problem}")
        yield podman, image
    finally:
        podman.remove()
        _remove_user(ROOTLESS_USER, runtime_dir)


def check(podman, image, *options, fmt="text"):
    """guard check --profile elasticsearch in a container, at the kernel's default map count."""
    with sysctl("vm.max_map_count", 65530):
        return podman.container(image, GUARD, "check", "--profile", "elasticsearch", "--format", fmt,
                                options=options, detach=False)


def test_rootful_podman_is_recognised_and_elasticsearch_refused_with_podmans_fix(rootful):
    podman, image = rootful
    status, out, log = check(podman, image, *LIMITS)
    assert status == EXIT_REFUSED, log
    assert ("guard:     vm.max_map_count is a node-level setting shared by every container: it cannot be set from "
            "inside a container, only on the host that runs Podman.\n"
            "guard:     To fix this, on the host that runs Podman run as root: sysctl -w vm.max_map_count=262144\n") in log
    assert "guard:     To fix this, start the container with: podman run --ulimit nofile=65535:65535 ...\n" in log
    assert "Rootless" not in log and "docker" not in log
    status, out, _ = check(podman, image, *LIMITS, fmt="json")
    assert (status, json.loads(out)["place"]) == (EXIT_REFUSED, "podman")


def test_rootful_privileged_podman_names_itself_and_can_write_the_hosts_settings(rootful):
    # /run/.containerenv says engine="podman-4.3.1" and rootless=0 only in a privileged container,
    # whose /proc/sys is the host's, writable: the fix says that writing it here changes the host.
    podman, image = rootful
    status, out, log = check(podman, image, "--privileged", *LIMITS, fmt="json")
    assert status == EXIT_REFUSED, log
    report = json.loads(out)
    fixes = {c["name"]: c["fix"] for c in report["checks"]}
    assert report["place"] == "podman"
    assert "This container can write /proc/sys (privileged, or systempaths=unconfined), so `sysctl -w " \
           "vm.max_map_count=262144` here changes it for the whole of the host that runs Podman" in fixes["max-map-count"]


def test_rootful_podman_prefix_keeps_redis_as_pid_1_and_stop_gives_its_exit_code(rootful):
    podman, image = rootful
    container = podman.container(image, GUARD, "--", *REDIS, options=[*LIMITS, "--tmpfs", "/data"])
    podman.wait_for_log(container, "Ready to accept connections")
    assert podman.exec(container, "cat", "/proc/1/comm") == (0, "redis-server")
    assert podman.exec(container, "redis-cli", "ping") == (0, "PONG")
    # Redis got podman stop's SIGTERM itself and exited 0, without the 10 s wait for SIGKILL.
    code, took = podman.stop(container)
    assert (code, took < 5) == (0, True), podman.logs(container)


def test_podman_stop_on_guard_watch_ends_it_with_the_childs_exit_code(rootful):
    podman, image = rootful
    container = podman.container(image, GUARD, "--watch", "--profile", "none", "--", *TRAPS_TERM, options=LIMITS)
    podman.wait_for_log(container, "ready")
    assert podman.exec(container, "cat", "/proc/1/comm") == (0, "guard")
    code, took = podman.stop(container)
    assert (code, took < 5) == (42, True), podman.logs(container)


def test_rootless_podman_is_recognised_and_told_that_the_users_hard_limit_bounds_the_container(rootless):
    # Rootless Podman's container root is the user (uid_map "0 UID 1"); its limits cannot pass the
    # user's hard ones, so the fix says to raise those first.
    podman, image = rootless
    status, out, log = check(podman, image, "--ulimit", "nofile=1024:1024")
    assert status == EXIT_REFUSED, log
    assert ("guard:     To fix this, on the host that runs Podman run as root (rootless Podman cannot change it: "
            "it takes root on that host): sysctl -w vm.max_map_count=262144\n") in log
    assert ("guard:     Rootless Podman cannot give a container more than the hard limit of the user who runs it "
            "(ulimit -Hn): raise that user's first, as root on the host: 'USER hard nofile 65535' in "
            "/etc/security/limits.conf, then log in again.\n") in log
    status, out, _ = check(podman, image, "--ulimit", "nofile=1024:1024", fmt="json")
    assert (status, json.loads(out)["place"]) == (EXIT_REFUSED, "podman-rootless")


def test_rootless_podman_refuses_a_limit_above_the_users_own_as_the_fix_says(rootless):
    podman, image = rootless
    hard = int(subprocess.run(podman.as_user("sh", "-c", "ulimit -Hn"), capture_output=True, text=True,
                              check=True).stdout)
    status, _, log = podman.container(image, "true", options=["--ulimit", f"nofile={hard + 1}:{hard + 1}"],
                                      detach=False)
    assert status != 0 and "operation not permitted" in log, log


def test_privileged_rootless_podman_names_itself_and_cannot_write_the_hosts_settings(rootless):
    # engine= and rootless=1 in /run/.containerenv; /proc/sys belongs to the host's root, whom
    # the user namespace does not map: not writable, and the fix does not pretend it is.
    podman, image = rootless
    status, out, log = check(podman, image, "--privileged", "--ulimit", "nofile=1024:1024", fmt="json")
    assert status == EXIT_REFUSED, log
    report = json.loads(out)
    fixes = {c["name"]: c["fix"] for c in report["checks"]}
    assert report["place"] == "podman-rootless"
    assert "cannot be set from inside a container, only on the host that runs Podman" in fixes["max-map-count"]


def test_a_rootless_user_is_removed_only_once_its_run_has_ended():
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid names no process
    mine, gone = f"{ROOTLESS_USER_PREFIX}{os.getpid()}", f"{ROOTLESS_USER_PREFIX}{ended.pid}"
    # another run's user (a live pid, or an earlier fixed name) is never this run's to remove
    assert left_by_ended_runs([mine, gone, "guard-rootless-test", "root"]) == [gone]
