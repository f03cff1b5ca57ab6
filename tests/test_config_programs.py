"""The installed guard in front of programs that read their settings from pipes, FIFOs and odd
files: guard never blocks on them, never takes their bytes, says what it did not read, and the
program still reads every byte. Real redis-server, real pipes, FIFOs and processes."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from support import crafted_proc, guard_executable, run_guard, text
from test_config import blocked_writer, still_waiting
from test_redis_host import READY, read_until_ready, stop

REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (apt-get install redis-server)")

# Stands in for a program that reads its config file: prints the bytes it read, as they were.
STAND_IN = textwrap.dedent(f"""\
    #!{sys.executable}
    import os, sys
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ["ES_PATH_CONF"], "elasticsearch.yml")
    with open(path, "rb") as f:
        sys.stdout.buffer.write(f.read())
    """)


def stand_in(tmp_path, name):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(STAND_IN)
    path.chmod(0o755)
    return str(path)


def redis_conf(tmp_path):
    sock = tmp_path / "redis.sock"
    conf = (f"port 0\nunixsocket {sock}\nrequirepass s3cret\nsave \"\"\nappendonly no\n"
            f"dir {tmp_path}\n").encode()
    return sock, conf


def redis_answers(sock, *auth):
    done = subprocess.run(["redis-cli", "-s", str(sock), *auth, "ping"], capture_output=True, timeout=10)
    return done.stdout.strip()


@needs_redis
@pytest.mark.parametrize("watch", [[], ["--watch"]], ids=["exec", "watch"])
@pytest.mark.parametrize("source", ["stdin", "fd"])
def test_redis_config_from_a_pipe_reaches_redis_whole(tmp_path, source, watch):
    """guard --mode warn -- redis-server <(...) once started Redis with an empty config: a lost
    requirepass left it open. Now Redis reads every line and asks for the password."""
    sock, conf = redis_conf(tmp_path)
    read_end, write_end = os.pipe()
    os.write(write_end, conf)
    os.close(write_end)
    path = "/dev/stdin" if source == "stdin" else f"/dev/fd/{read_end}"
    proc = subprocess.Popen([guard_executable(), "--mode", "warn", *watch, "--", "redis-server", path],
                            stdin=read_end if source == "stdin" else subprocess.DEVNULL,
                            pass_fds=() if source == "stdin" else (read_end,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    os.close(read_end)
    try:
        log = read_until_ready(proc)
        assert READY.search(log), log
        assert redis_answers(sock).startswith(b"NOAUTH")
        assert redis_answers(sock, "--no-auth-warning", "-a", "s3cret") == b"PONG"
    finally:
        stop(proc)
    err = proc.stderr.read().decode()
    assert f"guard: redis: config file: {path} is a FIFO or pipe, not a regular file: not read" in err


def run_launching(argv, env, timeout=20):
    return subprocess.run([guard_executable(), "--mode", "warn", *argv], capture_output=True, timeout=timeout,
                          cwd="/", env={**{k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}, **env})


CONTENT = "discovery.type: single-node\nmaxclients 77\nlog.dirs=/nowhere\n"


@pytest.mark.parametrize("program", ["elasticsearch", "redis-server", "kafka-server-start.sh", "valkey-server",
                                     "keydb-server"])
def test_a_fifo_config_is_neither_waited_on_nor_consumed(tmp_path, program):
    """A FIFO with no writer (ES_PATH_CONF, a Redis config, server.properties) hung guard for
    good. Now guard passes it by with a note, and the program gets everything the writer sends."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    fifo = conf_dir / ("elasticsearch.yml" if program == "elasticsearch" else "settings")
    os.mkfifo(fifo)
    writer = blocked_writer(fifo, CONTENT)
    try:
        started = time.monotonic()
        checked = run_guard("check", "--format", "json", "--", program, str(fifo), env={"ES_PATH_CONF": str(conf_dir)})
        assert time.monotonic() - started < 10
        assert checked.returncode in (0, 78), text(checked)
        assert any(f"{fifo} is a FIFO or pipe, not a regular file: not read" in note
                   for note in json.loads(checked.stdout)["notes"])
        assert still_waiting(writer), "guard opened the FIFO"
        argv = ["--", stand_in(tmp_path, program)] + ([] if program == "elasticsearch" else [str(fifo)])
        launched = run_launching(argv, {"ES_PATH_CONF": str(conf_dir)})
        assert launched.stdout.decode() == CONTENT, text(launched)
        assert f"{fifo} is a FIFO or pipe" in text(launched)
    finally:
        writer.kill()
        writer.wait()


def test_a_redis_include_that_is_a_fifo_is_left_for_redis(tmp_path):
    fifo = tmp_path / "extra.conf"
    os.mkfifo(fifo)
    conf = tmp_path / "redis.conf"
    conf.write_text(f"maxclients 50\ninclude {fifo}\n")
    writer = blocked_writer(fifo, "maxclients 60\n")
    try:
        done = run_guard("check", "--format", "json", "--", "redis-server", str(conf), timeout=20)
        assert done.returncode in (0, 78), text(done)
        report = json.loads(done.stdout)
        assert report["notes"][0].startswith(f"included file: {fifo} is a FIFO or pipe, not a regular file")
        assert {c["name"]: c for c in report["checks"]}["open-files"]["required"] == 50 + 32
        assert still_waiting(writer)
    finally:
        writer.kill()
        writer.wait()


def test_a_sysctl_that_is_a_fifo_is_skipped_with_the_reason(tmp_path):
    proc = crafted_proc(tmp_path / "proc", {"vm.overcommit_memory": 1, "net.core.somaxconn": 4096})
    fifo = tmp_path / "proc" / "sys" / "vm" / "max_map_count"
    os.mkfifo(fifo)
    writer = blocked_writer(fifo, "262144\n")
    try:
        done = run_guard("check", "--profile", "elasticsearch", "--format", "json", env={"GUARD_PROCFS": proc},
                         timeout=20)
        assert done.returncode in (0, 78), text(done)
        maps = {c["name"]: c for c in json.loads(done.stdout)["checks"]}["max-map-count"]
        assert maps["status"] == "skip"
        assert f"{fifo} is a FIFO or pipe, not a regular file: not read" in maps["message"]
        assert still_waiting(writer)
    finally:
        writer.kill()
        writer.wait()


# Started from a fresh interpreter: a child's peak RSS counts the memory of the process it was
# forked from until it execs (the kernel keeps the high-water mark across exec), and a long test
# session grows past 100 MB itself.
MEASURE = """
import json, os, subprocess, sys, time
started = time.monotonic()
proc = subprocess.Popen(sys.argv[1:], cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - started,
                  "maxrss_kib": usage.ru_maxrss, "err": proc.stderr.read().decode()}))
"""


def test_a_huge_config_file_is_not_read_and_costs_nothing(tmp_path):
    with open(tmp_path / "elasticsearch.yml", "wb") as f:
        f.truncate(200 << 20)
    measured = subprocess.run([sys.executable, "-I", "-c", MEASURE, guard_executable(), "check", "--profile",
                               "elasticsearch"], env={**os.environ, "ES_PATH_CONF": str(tmp_path)},
                              capture_output=True, check=True)
    run = json.loads(measured.stdout)
    err = run["err"]
    assert run["code"] in (0, 78), err
    assert run["seconds"] < 5
    assert run["maxrss_kib"] < 100 * 1024  # guard's own footprint, not the file's
    assert f"elasticsearch.yml: {tmp_path}/elasticsearch.yml is [209715200] bytes, more than the [1048576] " \
           "guard reads: not read; judged without its settings" in err


def test_placeholders_that_expand_a_small_file_into_gigabytes_stop_early(tmp_path):
    # 300 KB of file: each key names a 300 KB value twice, 1,000 times over (600 MB if expanded),
    # with guard given 256 MiB of address space. network.host comes last and stays as written: a
    # name that does not resolve, taken as beyond loopback.
    big = "x" * 300_000
    keys = "".join(f"k{n}: ${{big}}${{big}}\n" for n in range(1000))
    (tmp_path / "elasticsearch.yml").write_text(f"big: {big}\n{keys}network.host: ${{big}}\n")
    done = run_guard("check", "--format", "json", "--profile", "elasticsearch", timeout=60,
                     env={"ES_PATH_CONF": str(tmp_path)}, limits={"as": (256 << 20, 256 << 20)})
    assert done.returncode in (0, 78), text(done)
    notes = json.loads(done.stdout)["notes"]
    assert notes[0].startswith("production mode (cannot resolve [${big}]: ")
    assert any(note.startswith("placeholders expand past [8388608] bytes at [k") for note in notes), notes


@pytest.mark.parametrize("argv,note", [
    (["redis-server", "/dev/zero"], "config file: /dev/zero is a character device, not a regular file: not read"),
    (["mongod", "--maxConns", "\u00b2"], "--maxConns [\u00b2] is not a positive whole number: mongod refuses it"),
    (["redis-server", "/nonexistent/redis.conf"],
     "config file: cannot read /nonexistent/redis.conf: No such file or directory; judged without its settings"),
    (["kafka-server-start.sh", "/"], "server.properties: / is a directory, not a regular file: not read"),
    (["dragonfly", "--flagfile=/dev/zero"],
     "--flagfile: /dev/zero is a character device, not a regular file: not read"),
    (["scylla", "--options-file", "/"], "scylla.yaml: / is a directory, not a regular file: not read"),
], ids=["dev-zero", "max-conns", "missing-config", "directory-config", "dragonfly-flagfile", "scylla-yaml"])
def test_odd_program_inputs_end_in_a_note_and_a_clean_verdict(argv, note):
    for output in ("text", "json"):
        done = run_guard("check", "--format", output, "--", *argv, timeout=20)
        assert done.returncode in (0, 78), text(done)
        shown = text(done) if output == "text" else "\n".join(json.loads(done.stdout)["notes"])
        assert note in shown


def test_a_deep_redis_include_chain_is_read_to_its_end(tmp_path):
    for n in range(3000):
        body = f"include {tmp_path}/{n + 1}.conf\n" if n < 2999 else "maxclients 4242\n"
        (tmp_path / f"{n}.conf").write_text(body)
    done = run_guard("check", "--format", "json", "--", "redis-server", str(tmp_path / "0.conf"), timeout=30)
    assert done.returncode in (0, 78), text(done)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["open-files"]["required"] == 4242 + 32
