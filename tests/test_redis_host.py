"""guard in front of a real redis-server on this host, with Redis's own warnings as the oracle."""

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import time

import pytest

from guard import profiles
from hostsettings import host_settings_unchanged, sysctl
from support import guard_executable

REDIS = shutil.which("redis-server")
if REDIS is None and os.environ.get("CI") == "true":
    raise RuntimeError("redis-server is missing: scripts/install-deps installs it")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (apt-get install redis-server)")

READY = re.compile(rb"ready to accept connections", re.IGNORECASE)


def redis_args(sock, *extra):
    return ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no", *extra]


def start(argv, env=None):
    return subprocess.Popen([guard_executable(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd="/", env={**os.environ, **(env or {})})


def read_until_ready(proc, timeout=20):
    """Redis's log up to its ready line; stops the process if it never gets there."""
    deadline, log = time.monotonic() + timeout, b""
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline and not READY.search(log):
        chunk = proc.stdout.read() or b""
        log += chunk
        if proc.poll() is not None and not chunk:
            break
        time.sleep(0.02)
    return log


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_overcommit_off_warns_as_redis_does_and_starts_it(tmp_path):
    sock = tmp_path / "r.sock"
    with sysctl("vm.overcommit_memory", 0):
        proc = start(["--profile", "redis", "--", *redis_args(sock)])
        try:
            log = read_until_ready(proc)
        finally:
            stop(proc)
        err = proc.stderr.read().decode()
    assert READY.search(log), log
    assert "(warning) memory overcommit vm.overcommit_memory is [0] but should be [1]" in err
    assert "sysctl -w vm.overcommit_memory=1" in err
    assert b"WARNING Memory overcommit must be enabled" in log  # Redis's own word, the same verdict


def test_overcommit_required_refuses_before_redis_starts(tmp_path):
    with sysctl("vm.overcommit_memory", 0):
        proc = start(["--require", "vm.overcommit_memory=1", "--", *redis_args(tmp_path / "r.sock")])
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert not READY.search(out) and b"Redis" not in out
    err = err.decode()
    assert "memory overcommit vm.overcommit_memory is [0] but must be [1]" in err
    assert "sysctl -w vm.overcommit_memory=1" in err


def test_overcommit_on_execs_redis_with_guards_pid(tmp_path):
    sock = tmp_path / "r.sock"
    with sysctl("vm.overcommit_memory", 1):
        proc = start(redis_args(sock))  # the profile comes from the command's name
        try:
            log = read_until_ready(proc)
            assert READY.search(log), log
            assert f"pid={proc.pid},".encode() in log
            pong = subprocess.run(["redis-cli", "-s", str(sock), "ping"], capture_output=True, timeout=10)
            assert pong.stdout.strip() == b"PONG"
        finally:
            code = stop(proc)
    assert code == 0  # Redis's own exit code after SIGTERM: a clean shutdown


REDIS_WARNINGS = {
    "vm.overcommit_memory": rb"Memory overcommit must be enabled",
    "net.core.somaxconn": rb"TCP backlog setting of \d+ cannot be enforced",
    "nofile.hard": rb"maxclients has been reduced",
    "transparent_hugepage": rb"Transparent Huge Pages",
}


@pytest.mark.parametrize("extra", [
    [],
    ["--tcp-backlog", "8192"],
    ["--maxclients", "60000"],
    ["--maxclients", "100", "--tcp-backlog", "128"],
    ["--disable-thp", "no"],
], ids=["defaults", "big-backlog", "many-clients", "small", "thp-allowed"])
def test_guard_flags_exactly_what_redis_warns_about(tmp_path, extra):
    with host_settings_unchanged():
        proc = start(["--mode", "warn", "--format", "json", "--", *redis_args(tmp_path / "r.sock", *extra)])
        try:
            log = read_until_ready(proc)
        finally:
            stop(proc)
    report = json.loads(proc.stderr.read())
    flagged = {c["key"] for c in report["checks"] if c["status"] in ("fail", "warn")}
    warned = {key for key, pattern in REDIS_WARNINGS.items() if re.search(pattern, log)}
    assert READY.search(log), log
    assert flagged == warned, (flagged, warned, log.decode(errors="replace"))


def test_a_config_file_named_by_a_glob_is_read_as_redis_reads_it(tmp_path):
    # redis-server globs its config file argument as it globs an include (config.c loadServerConfig)
    (tmp_path / "10-clients.conf").write_text("maxclients 60000\n")
    (tmp_path / "20-backlog.conf").write_text("tcp-backlog 100\n")
    argv = ["--mode", "warn", "--format", "json", "--", "redis-server", f"{tmp_path}/*.conf",
            *redis_args(tmp_path / "r.sock")[1:]]
    with host_settings_unchanged():
        proc = subprocess.Popen([guard_executable(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
        try:
            log = read_until_ready(proc)
        finally:
            stop(proc)
    report = json.loads(proc.stderr.read())
    assert READY.search(log), log
    assert re.search(REDIS_WARNINGS["nofile.hard"], log)
    assert {c["key"]: c["required"] for c in report["checks"]} == {
        "vm.overcommit_memory": 1, "net.core.somaxconn": 100, "nofile.hard": 60032}
    assert {c["key"]: c["status"] for c in report["checks"]}["nofile.hard"] == "warn"


@pytest.mark.parametrize("name,value", [("maxclients", v) for v in ("100", "0100", "099", "+100", "-0", "0",
                                                                    "4294967295", "4294967296")]
                         + [("tcp-backlog", v) for v in ("0", "00", "-1", "2147483647", "2147483648")])
def test_a_number_is_refused_exactly_when_redis_refuses_it(name, value):
    # redis-server parses numbers with string2ll (util.c): no leading zero, no plus sign
    redis = subprocess.run(["redis-server", "--port", "0", "--save", "", f"--{name}", value], capture_output=True,
                           timeout=20, cwd="/")
    refused = b"FATAL CONFIG FILE ERROR" in redis.stdout + redis.stderr
    notes = profiles.PROFILES["redis"].plan(profiles.Invocation(("redis-server", f"--{name}", value))).notes
    assert any(note.startswith(f"{name} [{value}] must be a whole number") for note in notes) == refused, notes
