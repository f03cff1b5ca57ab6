"""`guard maps`: the table, JSON and Prometheus views of map counts, and its exit codes."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from guard import maps, mapsview
from hostsettings import host_settings_unchanged
from support import guard_executable

LINE = "7f0000000000-7f0000001000 r--p 00000000 00:00 0 \n"
GATE = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"


@pytest.fixture
def proc(tmp_path, monkeypatch):
    """A crafted proc root: three processes, one unreadable, and vm.max_map_count 1000."""
    for pid, name, lines in ((10, "redis-server", 250), (11, 'odd"na\\me', 3), (12, "java", 900)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "maps").write_text(LINE * lines + GATE)
        (tmp_path / str(pid) / "comm").write_text(name + "\n")
    (tmp_path / "13").mkdir()
    (tmp_path / "13" / "maps").mkdir()  # read() fails: EISDIR
    (tmp_path / "13" / "comm").write_text("secret\n")
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    (tmp_path / "sys" / "vm" / "max_map_count").write_text("1000\n")
    monkeypatch.setenv("GUARD_PROCFS", str(tmp_path))
    return tmp_path


def test_table_is_largest_first_with_the_limit_in_the_header(proc, capsys):
    assert mapsview.run([], None, "text") == 0
    assert capsys.readouterr().out == (
        "vm.max_map_count [1000]\n"
        "     PID      MAPS  % LIMIT  NAME\n"
        "      12       900    90.0%  java\n"
        "      10       250    25.0%  redis-server\n"
        '      11         3     0.3%  odd"na\\me\n'
        "      13         -        -  secret (is a directory)\n"
    )


def test_top_keeps_the_largest(proc, capsys):
    assert mapsview.run([], 2, "text") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == ["12", "10"]


def test_json_for_scripts(proc, capsys):
    assert mapsview.run(["11", "10", "11"], None, "json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "max_map_count": 1000,
        "processes": [
            {"pid": 10, "name": "redis-server", "maps": 250, "percent": 25.0, "error": None},
            {"pid": 11, "name": 'odd"na\\me', "maps": 3, "percent": 0.3, "error": None},
        ],
    }


def test_prometheus_exposition_escapes_labels(proc, capsys):
    assert mapsview.run([], 2, "prometheus") == 0
    assert capsys.readouterr().out == (
        "# HELP guard_process_map_count Memory mappings (VMAs) of a process, which the kernel "
        "compares with vm.max_map_count.\n"
        "# TYPE guard_process_map_count gauge\n"
        'guard_process_map_count{pid="12",comm="java"} 900\n'
        'guard_process_map_count{pid="10",comm="redis-server"} 250\n'
        "# HELP guard_vm_max_map_count The kernel's limit on memory mappings per process "
        "(vm.max_map_count).\n"
        "# TYPE guard_vm_max_map_count gauge\n"
        "guard_vm_max_map_count 1000\n"
    )
    rows = [mapsview.Row(1, 'a"b\nc', 5), mapsview.Row(2, "x", None, OSError(13, "Permission denied"))]
    assert mapsview.render_prometheus(rows, None).splitlines()[2:] == [
        'guard_process_map_count{pid="1",comm="a\\"b\\nc"} 5']


def test_pid_that_does_not_exist_exits_1_with_a_message(proc, capsys):
    assert mapsview.run(["10", "99"], None, "text") == 1
    captured = capsys.readouterr()
    assert captured.err == "guard: no process with pid [99]\n"
    assert "redis-server" in captured.out


def test_only_missing_pids_give_the_message_and_no_empty_table(proc, capsys):
    assert mapsview.run(["99"], None, "text") == 1
    captured = capsys.readouterr()
    assert (captured.err, captured.out) == ("guard: no process with pid [99]\n", "")


def test_pid_that_cannot_be_read_exits_1_and_says_why(proc, capsys):
    assert mapsview.run(["13"], None, "text") == 1
    captured = capsys.readouterr()
    assert captured.err == "guard: cannot count the memory maps of pid [13]: is a directory\n"
    assert captured.out.splitlines()[-1] == "      13         -        -  secret (is a directory)"


@pytest.mark.parametrize("typed", ["abc", "-5", "0", "１２", "4194305", "99999999999"])
def test_pid_that_is_not_a_process_id_is_a_usage_error(typed, capsys):
    assert mapsview.run([typed], None, "text") == 2
    assert capsys.readouterr().err == f"guard: PID must be a process id but was [{typed}]\n"


def test_unreadable_limit_shows_as_unknown(proc, capsys):
    os.unlink(proc / "sys" / "vm" / "max_map_count")
    assert mapsview.run(["10"], None, "text") == 0
    assert capsys.readouterr().out.splitlines()[::2] == [
        "vm.max_map_count [unknown]", "      10       250        -  redis-server"]


def test_this_process_on_the_real_proc(capsys):
    assert mapsview.run([str(os.getpid())], None, "json") == 0
    (row,) = json.loads(capsys.readouterr().out)["processes"]
    assert row["pid"] == os.getpid() and row["maps"] > 10 and row["error"] is None


def test_process_counted_then_gone_before_its_name_is_read_is_left_out():
    # the race of a whole-system scan: counted, then exited before /proc/PID/comm was read
    proc = subprocess.Popen(["sleep", "30"])
    try:
        counts = {proc.pid: maps.count(proc.pid) + 10**6, os.getpid(): maps.count(os.getpid())}
    finally:
        proc.kill()
        proc.wait()
    assert [row.pid for row in mapsview.largest_first(counts, {})] == [os.getpid()]
    assert [row.pid for row in mapsview.largest_first(counts, {}, top=1)] == [os.getpid()]


def test_unreadable_name_of_a_live_process_is_a_question_mark(proc, capsys):
    os.unlink(proc / "10" / "comm")
    assert mapsview.run(["10"], None, "text") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "      10       250    25.0%  ?"


# --- --output and --every: a node agent for node_exporter's textfile collector --------------


def test_output_replaces_the_file_whole_instead_of_stdout(proc, capsys, tmp_path):
    (tmp_path / "out").mkdir()  # tmp_path is the crafted proc root
    path = tmp_path / "out" / "maps.prom"
    path.write_text("old\n")
    assert mapsview.run([], 1, "prometheus", str(path)) == 0
    assert capsys.readouterr().out == ""
    assert 'guard_process_map_count{pid="12",comm="java"} 900\n' in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path / "out") == ["maps.prom"]  # no temporary file left behind


def test_output_is_utf8_under_an_ascii_locale_and_leaves_no_temporary_file(tmp_path):
    # A process may name itself any bytes; guard's own locale (a legacy one, or C without
    # Python's UTF-8 coercion) must not decide whether its file can be written.
    named = subprocess.Popen(["python3", "-c", "import sys, time; open('/proc/self/comm', 'wb').write(b'caf\\xc3\\xa9'); "
                              "print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        named.stdout.readline()
        path = tmp_path / "maps.prom"
        command, env = maps_command(str(named.pid), "--format", "prometheus", "--output", str(path))
        done = subprocess.run(command, env={**env, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
                              capture_output=True, text=True, timeout=30)
    finally:
        named.kill()
        named.wait()
    assert (done.returncode, done.stderr) == (0, "")
    assert f'guard_process_map_count{{pid="{named.pid}",comm="caf' in path.read_text(encoding="utf-8")
    assert os.listdir(tmp_path) == ["maps.prom"]


def test_output_that_cannot_be_written_is_said_and_exits_74(proc, capsys, tmp_path):
    path = tmp_path / "missing" / "maps.txt"
    assert mapsview.run([], None, "text", str(path)) == 74
    assert capsys.readouterr().err == f"guard: cannot write {path}: No such file or directory\n"


def maps_command(*args):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    return [guard_executable(), "maps", *args], clean


WHOLE_SYSTEM = "guard: --every keeps a file current with the whole system's view: give --output PATH, and no PID\n"
NOT_REPLACED = "guard: --output must be a regular file or a path that does not exist yet, but [{path}] is a {kind}\n"


@pytest.mark.parametrize("args, message", [
    (["--every", "1"], WHOLE_SYSTEM),
    (["--output", "{out}", "--every", "1", "1"], WHOLE_SYSTEM),
    (["--output", "{out}", "--every", "0"],
     "guard: --every must be a number of seconds above 0, at most 1000000000 but was [0]\n"),
    (["--output", "{out}", "--every", "1", "--watch-cpu", "101"],
     "guard: --watch-cpu must be a percentage above 0, at most 100 but was [101]\n"),
    (["--watch-cpu", "1"], "guard: --watch-cpu spaces out the scans of --every: give --every SECONDS too\n"),
    (["--output", "{fifo}"], NOT_REPLACED.format(path="{fifo}", kind="FIFO")),
    (["--output", "{link}", "--every", "1"], NOT_REPLACED.format(path="{link}", kind="symbolic link")),
])
def test_bad_audit_usage_exits_2_naming_it_and_writes_nothing(tmp_path, args, message):
    names = {"out": str(tmp_path / "out.prom"), "fifo": str(tmp_path / "fifo"), "link": str(tmp_path / "link")}
    os.mkfifo(names["fifo"])
    (tmp_path / "target").write_text("kept\n")
    os.symlink(tmp_path / "target", names["link"])
    command, env = maps_command(*(arg.format(**names) for arg in args))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (2, message.format(**names))
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link", "target"] and (tmp_path / "target").read_text() == "kept\n"


def audit(tmp_path, seconds, every, cpu=None):
    """guard maps --every on the real /proc for ``seconds``; every version of the file seen, each
    held open as it was found (so that no inode is reused and counted twice), and SIGTERM's result."""
    path = tmp_path / "maps.prom"
    extra = ["--watch-cpu", cpu] if cpu else []
    command, env = maps_command("--format", "prometheus", "--output", str(path), "--every", every, "--top", "5", *extra)
    guard = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    versions, held = {}, []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                f = open(path)
            except FileNotFoundError:
                continue
            inode = os.fstat(f.fileno()).st_ino
            if inode in versions:
                f.close()
            else:
                versions[inode] = f.read()
                held.append(f)
            time.sleep(0.002)
    finally:
        guard.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = guard.wait(timeout=10)
        waited = time.monotonic() - stopped
        for f in held:
            f.close()
    return list(versions.values()), (code, waited, guard.stderr.read()), sorted(os.listdir(tmp_path))


def test_every_rewrites_the_file_whole_each_time_and_ends_0_on_sigterm(tmp_path):
    with host_settings_unchanged():  # each version names the limit: no other test may change it meanwhile
        versions, (code, waited, err), left = audit(tmp_path, 1.5, "0.05", cpu="100")
        with open("/proc/sys/vm/max_map_count") as f:
            limit = f.read().strip()
    assert (code, err) == (0, "") and waited < 1
    assert len(versions) >= 5, len(versions)
    for text in versions:  # never a part: each version whole, from its first line to its last
        assert text.startswith("# HELP guard_process_map_count ")
        assert text.endswith(f"guard_vm_max_map_count {limit}\n")
        assert text.count("guard_process_map_count{") == 5
    assert left == ["maps.prom"]  # no temporary file left behind


def test_every_stays_under_its_cpu_share_by_spacing_the_scans_out(tmp_path):
    # A scan of every process costs a few ms of CPU: under 0.001 % of a core the next one waits
    # minutes, where --every asked for 50 ms; with the whole core, scans come every 50 ms.
    capped, (code, _, _), _ = audit(tmp_path, 1.5, "0.05", cpu="0.001")
    uncapped, _, _ = audit(tmp_path, 1.5, "0.05", cpu="100")
    assert code == 0
    assert len(capped) == 1, len(capped)
    assert len(uncapped) >= 10, len(uncapped)


# --user: the audit DaemonSet's identity (guard/privileges.py)

AUDIT_USER = 43210  # deploy/kubernetes/audit's, a user no other process runs as


def status_fields(pid):
    with open(f"/proc/{pid}/status") as f:
        return {name: value.strip() for name, value in (line.split(":", 1) for line in f)}


def test_user_becomes_that_user_with_no_group_keeping_sys_ptrace_alone():
    # Started as root, as the DaemonSet's container: every id becomes the user's, every
    # capability but CAP_SYS_PTRACE is gone, and the maps of root's processes are still counted.
    if os.geteuid() != 0:
        pytest.skip("needs root, as the DaemonSet starts guard")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="guard-maps-user-"))  # one the user can reach
    os.chmod(folder, 0o755)
    os.chown(folder, AUDIT_USER, AUDIT_USER)
    path = folder / "maps.prom"
    command, env = maps_command("--format", "prometheus", "--output", str(path), "--every", "0.05",
                                "--user", f"{AUDIT_USER}:{AUDIT_USER}")
    guard = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not path.exists() and guard.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        status = status_fields(guard.pid) if guard.poll() is None else {}
        text = path.read_text() if path.exists() else ""
    finally:
        guard.send_signal(signal.SIGTERM)
        code, err = guard.wait(timeout=10), guard.stderr.read()
        shutil.rmtree(folder)
    assert (code, err) == (0, "") and text, err
    assert status["Uid"].split() == status["Gid"].split() == [str(AUDIT_USER)] * 4
    assert status["Groups"] == ""
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 1 << 19  # CAP_SYS_PTRACE
    assert int(status["CapInh"], 16) == int(status["CapAmb"], 16) == 0
    assert f'guard_process_map_count{{pid="{os.getpid()}",' in text  # root's: read with CAP_SYS_PTRACE


@pytest.mark.parametrize("value", ["0", "root", "1000:", ":1000", "1000:0", "1000:1000:1", "-5", "4294967295", ""])
def test_user_must_be_numbers_other_than_root(value):
    command, env = maps_command("--user", value, "1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr, done.stdout) == (
        2, f"guard: --user must be UID or UID:GID, numbers other than 0, but was [{value}]\n", "")


def test_user_that_cannot_be_become_is_said_and_nothing_is_read():
    # A user without CAP_SETUID (here nobody) cannot become another: a usage error before any
    # count, rather than a count made as the wrong user.
    command, env = maps_command("--user", str(AUDIT_USER), "1")
    done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *command], env=env,
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"guard: --user [{AUDIT_USER}]: setting the user and groups: Operation not permitted: "
                           "start guard maps as root with CAP_SETUID and CAP_SETGID to become another user\n")
