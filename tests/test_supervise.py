"""guard --watch with real processes: exit codes, signals, zombies, and the map-count warnings."""

import contextlib
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import vmaholder
from guard import mapsview, place, supervise
from hostsettings import host_settings_unchanged
from support import guard_executable, in_own_namespaces

# The installed console script, as users run it (python -m guard from the checkout's root would
# import the source tree, which has no compiled scanner).
GUARD = [guard_executable(), "--quiet", "--watch"]
PYTHON = sys.executable


def guard(*command, interval="1", cpu="1.5", **popen):
    return subprocess.Popen([*GUARD, "--interval", interval, "--watch-cpu", cpu, "--", *command], **popen)


def poll(condition, timeout=10.0, what="condition"):
    """The condition's first true value, checked every 10 ms; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def stat_fields(pid):
    """(state, ppid, pgrp) of a process, or None once it is gone (reaped)."""
    text = read_file(f"/proc/{pid}/stat")
    return parse_stat(text) if text else None


def parse_stat(text):
    state, ppid, pgrp = text[text.rindex(")") + 2:].split()[:3]
    return state, int(ppid), int(pgrp)


def zombies_of(parent):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(name)
            if fields and fields[0] == "Z" and fields[1] == parent:
                found.append(int(name))
    return found


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


# --- exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 64, 78, 125, 126, 127, 128, 129, 137, 143, 200, 254, 255])
def test_exit_code_of_the_child_is_guards_exit_code(code):
    assert subprocess.run([*GUARD, "--", "sh", "-c", f"exit {code}"]).returncode == code


def test_every_exit_code_from_0_to_255_passes_through():
    # run() in a process of its own: it reaps every child of the process it runs in, and leaves
    # the forwarded signals blocked, as guard's last act; each run here starts unblocked, as guard.
    script = ("import signal\nfrom guard import supervise\n"
              "def run(n):\n"
              "    signal.pthread_sigmask(signal.SIG_SETMASK, ())\n"
              "    return supervise.run(['sh', '-c', f'exit {n}'], 1.0)\n"
              "print([n for n in range(256) if run(n) != n])")
    out = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.stdout.strip() == "[]", out.stderr


KILL_ITSELF = """
import os, resource, signal, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSEGV and SIGABRT without a core file
signum = int(sys.argv[1])
if signum != signal.SIGKILL:
    signal.signal(signum, signal.SIG_DFL)
os.kill(os.getpid(), signum)
"""


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGABRT, signal.SIGKILL,
                                    signal.SIGSEGV, signal.SIGPIPE, signal.SIGTERM, signal.SIGUSR1])
def test_child_killed_by_a_signal_gives_128_plus_its_number(signum):
    result = subprocess.run([*GUARD, "--", PYTHON, "-c", KILL_ITSELF, str(int(signum))])
    assert result.returncode == 128 + signum


def test_command_not_found_is_127_and_named_with_the_path_searched():
    result = subprocess.run([*GUARD, "--", "no-such-program-anywhere"], capture_output=True, text=True,
                            env=dict(os.environ, PATH="/usr/bin:/bin"))
    assert result.returncode == 127
    assert "guard: exec no-such-program-anywhere failed: not found in PATH [/usr/bin:/bin]" in result.stderr


def test_fork_refused_is_said_with_71_not_an_internal_error():
    # nobody may run one process, guard itself: fork() fails with EAGAIN. Root is exempt from nproc,
    # so guard runs with nobody as its real user, without the capabilities that lift the limit.
    done = subprocess.run(["setpriv", "--ruid", "65534", "--bounding-set", "-sys_resource,-sys_admin", *GUARD,
                           "--", "true"], capture_output=True, timeout=30,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NPROC, (1, 1)))
    assert (done.returncode, done.stderr.decode()) == (71, (
        "guard: cannot start true: fork failed: Resource temporarily unavailable (the process limit of the "
        "user, nproc, or of the container, pids.max, is reached)\n"))


def test_command_not_executable_is_126_and_named(tmp_path):
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    result = subprocess.run([*GUARD, "--", str(script)], capture_output=True, text=True)
    assert result.returncode == 126
    assert f"guard: exec {script} failed: Permission denied" in result.stderr


def test_argv_reaches_the_child_verbatim_without_a_shell():
    args = ["$HOME", "a b", "*", "", "'quoted'", "; exit 3"]
    out = subprocess.run([*GUARD, "--", PYTHON, "-c", "import sys; print(sys.argv[1:])", *args],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == repr(args)


# --- the child's start state --------------------------------------------------------------


def status_field(text, name):
    return next(line.split(":")[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def test_child_starts_with_no_blocked_or_ignored_signals():
    # guard blocks every forwarded signal and Python ignores SIGPIPE and SIGXFSZ; none of that
    # may leak into the program. cat is the child itself, so its status is the child's.
    out = subprocess.run([*GUARD, "--", "cat", "/proc/self/status"], capture_output=True, text=True)
    assert int(status_field(out.stdout, "SigBlk"), 16) == 0
    assert int(status_field(out.stdout, "SigIgn"), 16) == 0


def test_child_runs_in_a_process_group_of_its_own():
    out = subprocess.run([*GUARD, "--", "cat", "/proc/self/stat"], capture_output=True, text=True)
    pid = int(out.stdout.split()[0])
    assert parse_stat(out.stdout)[2] == pid


# --- signals ------------------------------------------------------------------------------

RECORD_SIGNALS = """
import signal, sys, time
log = sys.argv[1]
def record(signum, frame):
    with open(log, "a") as f:
        f.write(signal.Signals(signum).name + "\\n")
    if signum == signal.SIGTERM:
        sys.exit(0)
for name in sys.argv[2:]:
    signal.signal(signal.Signals[name], record)
open(log + ".ready", "w").close()
while True:
    signal.pause()
"""

FORWARDED = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGQUIT", "SIGWINCH", "SIGALRM", "SIGCONT", "SIGRTMIN"]


def test_signals_sent_to_guard_reach_the_child(tmp_path):
    log = str(tmp_path / "signals")
    proc = guard(PYTHON, "-c", RECORD_SIGNALS, log, *FORWARDED, "SIGTERM")
    try:
        poll(lambda: os.path.exists(log + ".ready"), what="the child to install its handlers")
        for name in FORWARDED:
            os.kill(proc.pid, signal.Signals[name])
            poll(lambda: read_file(log).splitlines()[-1:] == [name], what=f"{name} to reach the child")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert read_file(log).splitlines() == FORWARDED + ["SIGTERM"]
    finally:
        stop(proc)


# A child that leaves guard's user for nobody's (as gosu or su-exec do), then writes its pid to
# the file it was given and lives 2 s: guard, root without CAP_KILL, may no longer signal it.
BECOMES_NOBODY = ("import os, sys, time\nf = open(sys.argv[1], 'w')\nos.setresgid(65534, 65534, 65534)\n"
                  "os.setresuid(65534, 65534, 65534)\nf.write(f'{os.getpid()}\\n')\nf.close()\ntime.sleep(2)\nsys.exit(7)")


def test_a_signal_guard_may_not_forward_is_said_and_supervision_goes_on(tmp_path):
    started = str(tmp_path / "started")
    proc = subprocess.Popen(["setpriv", "--bounding-set", "-kill", *GUARD, "--", PYTHON, "-c", BECOMES_NOBODY,
                             started], stderr=subprocess.PIPE)
    try:
        child = poll(lambda: read_file(started).strip(), what="the child to become nobody")
        # a real-time signal other than SIGRTMIN and SIGRTMAX has no name in Python's signal.Signals
        os.kill(proc.pid, signal.SIGRTMIN + 1)
        assert proc.wait(timeout=10) == 7
        assert proc.stderr.read().decode() == (f"guard: cannot forward SIGRTMIN+1 to pid [{child}]: "
                                               "Operation not permitted\n")
    finally:
        stop(proc)
        proc.stderr.close()


def test_sigterm_while_a_name_lookup_is_still_running_reaches_the_child(tmp_path):
    # Elasticsearch's network.host names a host: guard waits 2 s for the lookup and goes on, the
    # lookup's thread lives on for the resolver's 5 s. A thread with SIGTERM unblocked would take
    # docker stop's SIGTERM, whose default action ends guard and orphans the child.
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
    (tmp_path / "elasticsearch.yml").write_text("network.host: es-node.example\n")
    log = str(tmp_path / "signals")
    argv = in_own_namespaces([*GUARD, "--interval", "0.001", "--watch-cpu", "100", "--mode", "warn",
                              "--profile", "elasticsearch", "--", PYTHON, "-c", RECORD_SIGNALS, log, "SIGUSR1",
                              "SIGTERM"], binds=[(tmp_path / "resolv.conf", "/etc/resolv.conf")],
                             silent_name_server=True)
    proc = subprocess.Popen(argv, env={**os.environ, "ES_PATH_CONF": str(tmp_path)}, stderr=subprocess.PIPE)
    children = []
    try:
        poll(lambda: os.path.exists(log + ".ready"), what="the child to install its handlers")
        children = supervise.descendants(proc.pid)
        # the kernel gives a signal to the main thread while it waits in sigtimedwait(): many come,
        # so that some arrive while it samples, 1000 times a second
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and proc.poll() is None:
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.001)
        assert proc.poll() is None, f"guard ended with [{proc.returncode}], the child left behind"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
        assert read_file(log).splitlines()[-1:] == ["SIGTERM"]
    finally:
        stop(proc)
        proc.stderr.close()
        for child in children:  # left behind when guard ended first
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_sigterm_stops_a_child_that_keeps_the_default_promptly_with_143():
    proc = guard("sleep", "60")
    try:
        poll(lambda: supervise.descendants(proc.pid), what="guard to start sleep")
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 2
    finally:
        stop(proc)


# --- zombies ------------------------------------------------------------------------------

# The child forks a helper that forks the orphan and exits at once; the child reaps the helper,
# so the orphan's parent is gone and the kernel hands it to the nearest subreaper: guard.
ORPHAN_MAKER = """
import os, sys, time
out = sys.argv[1]
helper = os.fork()
if helper == 0:
    helper = os.getpid()
    orphan = os.fork()
    if orphan == 0:
        while os.getppid() == helper:
            time.sleep(0.01)
        with open(out + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {os.getppid()}")
        os.rename(out + ".tmp", out)
        os._exit(0)
    os._exit(0)
os.waitpid(helper, 0)
time.sleep(60)
"""


def test_zombies_of_orphaned_grandchildren_are_reaped(tmp_path):
    out = str(tmp_path / "orphan")
    proc = guard(PYTHON, "-c", ORPHAN_MAKER, out)
    try:
        orphan, new_parent = map(int, poll(lambda: read_file(out), what="the orphan to report").split())
        assert new_parent == proc.pid, "guard is the orphan's subreaper"
        poll(lambda: stat_fields(orphan) is None, what=f"guard to reap the orphan [{orphan}]")
        assert zombies_of(proc.pid) == []
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        stop(proc)


# --- watching the map count ---------------------------------------------------------------

# Maps one page at a time, alternating protections so neighbours never merge into one VMA:
# quickly up to 75 % of vm.max_map_count, then 1 % every STEP seconds until mmap fails. It then
# unmaps everything and waits for SIGTERM, so the test sees guard's line when the count falls.
GROW_MAPS = """
import ctypes, errno, mmap, signal, sys, time
step_seconds = float(sys.argv[1])
limit = int(open("/proc/sys/vm/max_map_count").read())
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
FAILED = ctypes.c_void_p(-1).value
mapped = []


def grow(n):
    for _ in range(n):
        prot = mmap.PROT_READ if len(mapped) % 2 else mmap.PROT_READ | mmap.PROT_WRITE
        addr = libc.mmap(None, mmap.PAGESIZE, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if addr in (None, FAILED):
            return ctypes.get_errno()
        mapped.append(addr)
    return 0

with open("/proc/self/maps", "rb") as f:
    present = f.read().count(b"\\n")
error = grow(limit * 75 // 100 - present)
while not error:
    time.sleep(step_seconds)
    error = grow(limit // 100)
print(f"child: mmap failed with {errno.errorcode[error]} after {len(mapped)} new maps", file=sys.stderr, flush=True)
for addr in mapped:
    libc.munmap(addr, mmap.PAGESIZE)
signal.pause()
"""


class Lines:
    """guard's stderr, line by line as it comes, for waiting on a line with a timeout."""

    def __init__(self, stream):
        self.lines, self.changed = [], threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, text, timeout):
        with self.changed:
            if not self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout):
                pytest.fail(f"no line with [{text}] after {timeout} s; got:\n" + "\n".join(self.lines))
            return next(i for i, line in enumerate(self.lines) if text in line)


def test_growing_maps_warn_at_80_90_95_percent_before_enomem_and_once_when_back():
    with host_settings_unchanged():  # the limit is read under the lock: another run may change it
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        if limit > 1 << 20:
            pytest.skip(f"vm.max_map_count [{limit}] is too high to reach in a test")
        # every 50 ms whatever a sample costs: the workload grows 1 % of the limit every 100 ms
        proc = guard(PYTHON, "-c", GROW_MAPS, "0.1", interval="0.05", cpu="100", stderr=subprocess.PIPE, text=True)
        try:
            lines = Lines(proc.stderr)
            failed = lines.wait_for("child: mmap failed with ENOMEM", timeout=60)
            back = lines.wait_for("back below 75% of vm.max_map_count", timeout=10)
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        finally:
            stop(proc)
    warnings = [i for i, line in enumerate(lines.lines) if "% of vm.max_map_count" in line and i < failed]
    assert [lines.lines[i].split("more than ")[1][:3] for i in warnings] == ["80%", "90%", "95%"]
    first = lines.lines[warnings[0]]
    assert first.startswith("guard: pid [")
    assert f"of vm.max_map_count [{limit}]; to fix this, raise vm.max_map_count on " in first
    assert first.endswith(f"sysctl -w vm.max_map_count={supervise.recommended(limit)}")
    assert failed < back
    assert sum("back below" in line for line in lines.lines) == 1


# --- levels, messages, metrics (no processes) ---------------------------------------------


@pytest.mark.parametrize("percent, before, after", [
    (79, 0, 0), (80, 0, 80), (89, 0, 80), (90, 0, 90), (95, 0, 95), (100, 0, 95),
    (90, 80, 90), (95, 90, 95),
    # down: a level is left only 5 points below it
    (76, 80, 80), (75, 80, 80), (74, 80, 0), (86, 90, 90), (84, 90, 80), (91, 95, 95), (89, 95, 90), (84, 95, 80),
    (10, 95, 0),
])
def test_level_goes_up_at_once_and_down_only_5_points_below(percent, before, after):
    assert supervise.level_of(percent, before) == after


def watcher(metrics_file=None):
    return supervise.MapWatch(metrics_file, root=1, where=place.Place("container", False))


def test_one_line_per_upward_crossing_and_one_when_back(capsys):
    watch = watcher()
    for count in (50000, 52430, 53000, 52000, 59000, 62300, 62000, 62500, 58000, 49500, 48000, 53000):
        watch.observe(1234, "java", count, 65530)
    assert capsys.readouterr().err.splitlines() == [
        "guard: pid [1234] (java) has [52430] memory maps, more than 80% of vm.max_map_count [65530]; "
        "to fix this, raise vm.max_map_count on the Docker host: sysctl -w vm.max_map_count=262144",
        "guard: pid [1234] (java) has [59000] memory maps, more than 90% of vm.max_map_count [65530]; "
        "to fix this, raise vm.max_map_count on the Docker host: sysctl -w vm.max_map_count=262144",
        "guard: pid [1234] (java) has [62300] memory maps, more than 95% of vm.max_map_count [65530]; "
        "to fix this, raise vm.max_map_count on the Docker host: sysctl -w vm.max_map_count=262144",
        "guard: pid [1234] (java) has [48000] memory maps, back below 75% of vm.max_map_count [65530]",
        "guard: pid [1234] (java) has [53000] memory maps, more than 80% of vm.max_map_count [65530]; "
        "to fix this, raise vm.max_map_count on the Docker host: sysctl -w vm.max_map_count=262144",
    ]


@pytest.mark.parametrize("limit, fix", [(65530, 262144), (262144, 524288), (1000000, 2000000)])
def test_fix_is_elasticsearchs_figure_or_double_a_limit_already_above_it(limit, fix):
    assert supervise.recommended(limit) == fix


def test_descendants_are_read_from_the_proc_root_and_a_vanished_pid_is_skipped(tmp_path, monkeypatch):
    tree = {1: {1: "10 11", 2: "12"}, 10: {10: "13"}, 11: {11: ""}, 12: None, 13: {13: "14"}}
    for pid, tasks in tree.items():
        os.makedirs(tmp_path / str(pid) / "task", exist_ok=True)
        for tid, children in (tasks or {}).items():
            os.makedirs(tmp_path / str(pid) / "task" / str(tid))
            (tmp_path / str(pid) / "task" / str(tid) / "children").write_text(children)
    monkeypatch.setenv("GUARD_PROCFS", str(tmp_path))
    # 12 has exited (no task files left); 14 is listed by 13 but already gone from the tree
    assert sorted(supervise.descendants(1)) == [10, 11, 12, 13, 14]


def test_metrics_file_is_replaced_whole_and_readable_by_the_exporter(tmp_path):
    path = tmp_path / "guard.prom"
    path.write_text("old\n")
    watcher(str(path)).write_metrics([mapsview.Row(1234, "java", 52430)], 65530)
    text = path.read_text()
    assert 'guard_process_map_count{pid="1234",comm="java"} 52430\n' in text
    assert "guard_vm_max_map_count 65530\n" in text
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path) == ["guard.prom"], "no temporary file left behind"


def test_metrics_file_that_cannot_be_written_is_said_once(tmp_path, capsys):
    watch = watcher(str(tmp_path / "missing-dir" / "guard.prom"))
    for _ in range(3):
        watch.write_metrics([], 65530)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"guard: cannot write metrics to {tmp_path}/missing-dir/guard.prom: No such file or directory"]


def _samples_in(seconds, holder, maps, metrics_file, cpu):
    """guard --watch at a 10 ms interval over a child holding ``maps`` maps: samples taken."""
    proc = subprocess.Popen([*GUARD, "--interval", "0.01", "--watch-cpu", cpu, "--metrics-file",
                             str(metrics_file), "--", holder, str(maps), "anon"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("ready")
        time.sleep(seconds)
    finally:
        stop(proc)
        proc.stdin.close()  # the holder keeps its maps until its stdin closes
        proc.stdout.close()
    [count] = [line.split()[1] for line in read_file(metrics_file).splitlines()
               if line.startswith("guard_watch_samples_total ")]
    return int(count)


def test_watch_spaces_out_samples_to_stay_under_its_cpu_share(tmp_path):
    holder = vmaholder.build(str(tmp_path))
    metrics = tmp_path / "guard.prom"
    capped = _samples_in(3, holder, 30000, metrics, cpu="1")
    uncapped = _samples_in(3, holder, 30000, metrics, cpu="100")
    # 30k maps take 5-20 ms of CPU to read: under a 1 % share the next sample waits 0.5-2 s, where
    # 10 ms was asked; with the whole core the watch samples every few tens of ms.
    assert capped <= 8, capped
    assert uncapped >= 4 * capped, (capped, uncapped)


# --- guard never exits while the child lives ------------------------------------------------

# The child outlives several samples and then exits with a code of its own: guard returning that
# code proves it stayed until the child's end.
OUTLIVE = ["sh", "-c", "sleep 1; exit 7"]


def test_a_watch_share_so_small_that_samples_never_come_keeps_supervising():
    # 1e-12 % of a core spaces the next sample out beyond what sigtimedwait() can wait for
    done = subprocess.run([*GUARD, "--watch-cpu", "1e-12", "--", *OUTLIVE], capture_output=True, timeout=30)
    assert done.returncode == 7, done.stderr


def test_stderr_nobody_reads_any_more_does_not_end_the_watch(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        # a metrics file in a directory that does not exist: a complaint to write at once
        done = subprocess.run([*GUARD, "--interval", "0.05", "--metrics-file", str(tmp_path / "none" / "m.prom"),
                               "--", *OUTLIVE], stderr=write_end, timeout=30)
    finally:
        os.close(write_end)
    assert done.returncode == 7


def watch_over_crafted_self(tmp_path, setup):
    """guard --watch over OUTLIVE, sampling every 50 ms from a crafted proc root (GUARD_PROCFS) with
    vm.max_map_count and the task folder of $$: the shell's pid, which guard keeps when the shell
    execs it, so the tree describes guard itself. setup: shell commands that craft the rest."""
    script = (f"mkdir -p {tmp_path}/$$/task/$$ {tmp_path}/sys/vm && echo 65530 > {tmp_path}/sys/vm/max_map_count && "
              f"{setup} && exec {' '.join(GUARD)} --interval 0.05 -- {' '.join(OUTLIVE[:2])} '{OUTLIVE[2]}'")
    return subprocess.run(["sh", "-c", script], env={**os.environ, "GUARD_PROCFS": str(tmp_path)},
                          capture_output=True, timeout=30)


@pytest.mark.parametrize("children", ["x y", "-1", "99999999999999999999", "0x10", "SELF"])
def test_malformed_children_file_is_no_reason_to_stop_supervising(tmp_path, children):
    # SELF lists guard as its own child, a cycle no walk may follow forever.
    words = children.replace("SELF", "$$")
    done = watch_over_crafted_self(tmp_path, f"echo '{words}' > {tmp_path}/$$/task/$$/children")
    assert done.returncode == 7, done.stderr
    assert b"internal error" not in done.stderr


def test_children_file_that_is_a_fifo_is_not_opened_and_the_walk_ends(tmp_path):
    # A crafted tree may hold anything; the kernel's children files are regular files. Opening a
    # FIFO for reading waits for a writer: run in a child so that a hang fails, not stalls, the test.
    os.makedirs(tmp_path / "1" / "task" / "1")
    os.mkfifo(tmp_path / "1" / "task" / "1" / "children")
    os.makedirs(tmp_path / "1" / "task" / "2")
    (tmp_path / "1" / "task" / "2" / "children").write_text("5 6")
    walk = "from guard import supervise; print(sorted(supervise.descendants(1)))"
    done = subprocess.run([PYTHON, "-c", walk], env={**os.environ, "GUARD_PROCFS": str(tmp_path)},
                          capture_output=True, text=True, timeout=10, cwd="/")
    assert (done.returncode, done.stdout, done.stderr) == (0, "[5, 6]\n", "")


# guard's own children file, or the maps of the descendant it names (in the C scanner): a FIFO
# nobody writes, where a sample that opened it would wait forever and never reap the child.
@pytest.mark.parametrize("fifo", ["$$/task/$$/children", "4000000/maps"])
def test_a_fifo_in_the_proc_tree_does_not_hold_up_supervision(tmp_path, fifo):
    done = watch_over_crafted_self(tmp_path, f"mkdir {tmp_path}/4000000 && echo 4000000 > {tmp_path}/$$/task/$$/children "
                                             f"&& rm -f {tmp_path}/{fifo} && mkfifo {tmp_path}/{fifo}")
    assert done.returncode == 7, done.stderr
    assert b"internal error" not in done.stderr


def test_sigchld_ignored_by_whoever_started_guard_does_not_lose_the_exit_code():
    # an ignored SIGCHLD lets the kernel reap children unseen: guard would wait forever
    start = ("import os, signal, sys\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
             "os.execv(sys.argv[1], sys.argv[1:])")
    done = subprocess.run([PYTHON, "-c", start, *GUARD, "--", *OUTLIVE], capture_output=True, timeout=30)
    assert done.returncode == 7, done.stderr


def test_signal_ignored_by_whoever_started_guard_stays_ignored_in_the_child(tmp_path):
    # sh -c "trap '' HUP; exec guard --watch ..." as under tini: SIGHUP sent to guard is forwarded
    # and the child, which inherited the ignore, lives on.
    status = tmp_path / "status"
    child = f"grep ^SigIgn /proc/self/status > {status}; sleep 1; exit 7"
    proc = subprocess.Popen(["sh", "-c", f"trap '' HUP; exec {' '.join(GUARD)} -- sh -c '{child}'"])
    try:
        poll(lambda: read_file(status), what="the child to start")
        os.kill(proc.pid, signal.SIGHUP)
        assert proc.wait(timeout=10) == 7
    finally:
        stop(proc)
    ignored = int(read_file(status).split()[1], 16)
    assert ignored & 1 << (signal.SIGHUP - 1)
    assert not ignored & 1 << (signal.SIGPIPE - 1), "Python's own ignores are not passed on"


def test_metrics_path_that_became_a_fifo_since_start_is_not_replaced(tmp_path, capsys):
    path = tmp_path / "guard.prom"
    watch = watcher(str(path))
    os.mkfifo(path)
    watch.write_metrics([mapsview.Row(1234, "java", 52430)], 65530)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert capsys.readouterr().err == f"guard: not writing metrics to {path}: it is a FIFO\n"
    assert os.listdir(tmp_path) == ["guard.prom"]
