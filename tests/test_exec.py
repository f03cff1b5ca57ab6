"""guard execs the program: the same PID, argv and environment as if guard were not there."""

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

import guard
from environ_program import block, exec_with
from support import guard_executable, run_guard, text

PASS = ["--require", "vm.max_map_count>=0"]  # a check that always passes, so guard execs


def test_program_keeps_guards_pid():
    code = "import os; print(os.getpid())"
    proc = subprocess.Popen([guard_executable(), *PASS, "--", sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid


ODD_ARGS = [b"", b" spaced  out ", b"--", b"--profile", b"kafka", b"$HOME", b"*", b"a\nb", b"\xff\xfe",
            b"-E", b"x=y", "é".encode()]


def test_argv_passes_verbatim_with_no_shell():
    code = "import os, sys; sys.stdout.buffer.write(b'\\0'.join(os.fsencode(a) for a in sys.argv[1:]))"
    argv = [os.fsencode(guard_executable()), *[a.encode() for a in PASS], b"--",
            os.fsencode(sys.executable), b"-c", code.encode(), *ODD_ARGS]
    done = subprocess.run(argv, capture_output=True, cwd="/", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(b"\0") == ODD_ARGS


def test_environment_passes_unchanged_even_in_the_c_locale():
    # CPython coerces the C locale by setting LC_CTYPE in its own environment (PEP 538); the
    # program must get exactly the environment guard was given.
    env = {"PATH": os.environ["PATH"], "ODD": "a=b c", "LANG": "C"}
    done = subprocess.run([guard_executable(), *PASS, "--", "env", "-0"], env=env, capture_output=True, cwd="/")
    got = dict(item.split(b"=", 1) for item in done.stdout.split(b"\0") if item)
    assert got == {k.encode(): v.encode() for k, v in env.items()}


def test_program_starts_with_default_signal_dispositions():
    # Python ignores SIGPIPE; exec would pass that on and `yes | head` would never end.
    done = run_guard(*PASS, "--", "grep", "^SigIgn", "/proc/self/status")
    assert done.stdout.split() == [b"SigIgn:", b"0000000000000000"]


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_program_exit_code_is_guards(code):
    assert run_guard(*PASS, "--", sys.executable, "-c", f"raise SystemExit({code})").returncode == code


def test_killed_program_status_is_seen_by_guards_parent():
    done = run_guard(*PASS, "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert done.returncode == -15


def test_missing_program_exits_127_naming_it_and_the_path_it_was_looked_up_in(tmp_path):
    done = run_guard(*PASS, "--", "no-such-program-here", env={"PATH": f"{tmp_path}:/usr/bin"})
    assert done.returncode == 127
    assert f"guard: exec no-such-program-here failed: not found in PATH [{tmp_path}:/usr/bin]" in text(done)


def test_missing_program_without_a_path_says_the_default_was_searched():
    env = {k: v for k, v in os.environ.items() if k != "PATH" and not k.startswith("GUARD_")}
    done = subprocess.run([guard_executable(), *PASS, "--", "no-such-program-here"], env=env,
                          capture_output=True, timeout=30)
    assert done.returncode == 127
    assert f"not found in PATH [{os.defpath}, the default: no PATH is set]" in text(done)


def test_missing_path_exits_127(tmp_path):
    done = run_guard(*PASS, "--", str(tmp_path / "nothing"))
    assert done.returncode == 127
    assert f"guard: exec {tmp_path}/nothing failed: No such file or directory" in text(done)


def test_directory_exits_126_saying_it_is_a_directory_as_the_shell_does(tmp_path):
    done = run_guard(*PASS, "--", str(tmp_path))
    assert done.returncode == 126
    assert f"guard: exec {tmp_path} failed: {tmp_path} is a directory" in text(done)


def test_file_that_is_not_executable_exits_126(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    done = run_guard(*PASS, "--", str(script))
    assert done.returncode == 126
    assert f"guard: exec {script} failed: Permission denied" in text(done)


def test_directory_exits_126(tmp_path):
    assert run_guard(*PASS, "--", str(tmp_path)).returncode == 126


def test_refusal_exits_78_and_never_starts_the_program(tmp_path):
    marker = tmp_path / "started"
    done = run_guard("--require", "vm.max_map_count>=2147483647", "--", "touch", str(marker))
    assert done.returncode == 78
    assert not marker.exists()


def test_warn_mode_starts_the_program_anyway(tmp_path):
    marker = tmp_path / "started"
    done = run_guard("--mode", "warn", "--require", "vm.max_map_count>=2147483647", "--", "touch", str(marker))
    assert done.returncode == 0 and marker.exists()
    assert "[1] of [1] checks failed" in text(done)
    assert "starting touch anyway (warn mode)" in text(done)


def test_usage_error_exits_2_and_never_starts_the_program(tmp_path):
    marker = tmp_path / "started"
    assert run_guard("--mode", "x", "--", "touch", str(marker)).returncode == 2
    assert not marker.exists()


def test_script_without_interpreter_line_is_not_run_through_a_shell(tmp_path):
    script = tmp_path / "noshebang"
    script.write_text("echo ran\n")
    script.chmod(0o755)
    done = run_guard(*PASS, "--", str(script))
    assert done.returncode == 126 and done.stdout == b""
    assert "Exec format error" in text(done)


# --- the environment as a list, exactly as guard was given it ------------------------------

# subprocess and os.execve take a mapping, which cannot hold a name twice or an entry without
# '=': tests/environ.c starts guard with exactly a list, and dumps the list the program got.


def run_with_environment(environ_program, envp, *argv, prefix=()):
    return subprocess.run([*prefix, *exec_with(environ_program, envp, *argv)], capture_output=True, cwd="/",
                          timeout=30)


ODD_ENVIRONMENT = [f"PATH={os.environ['PATH']}", "DUP=first", "LANG=C", "DUP=second", "NO_EQUALS_SIGN",
                   "=empty name", "", "SPACED= a  b ", "DUP=third"]

# What glibc's loader and libc read at a program's start, and may rewrite or drop there: the
# tunables parser writes a NUL after each value it takes, in the string the kernel copied (glibc
# 2.26 to 2.38, elf/dl-tunables.c); LD_* (ld.so(8)) and MALLOC_* (mallopt(3)) are read, and in
# secure mode removed; LANG=C alone makes CPython set LC_CTYPE in its own environment (PEP 538).
LOADER_ENVIRONMENT = [
    "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072",
    "LD_LIBRARY_PATH=/nonexistent", "LD_BIND_NOW=1", "MALLOC_ARENA_MAX=2", "MALLOC_PERTURB_=0",
    "MALLOC_TOP_PAD_=65536", "MALLOC_MMAP_THRESHOLD_=131072", "LANG=C", "NO_EQUALS_SIGN", "DUP=1", "DUP=2",
    # MongoDB 8.0's documented way past its kernel check, with more after it
    "GLIBC_TUNABLES=glibc.pthread.rseq=0:glibc.malloc.tcache_count=0:glibc.malloc.mmap_max=5",
]
# Each case follows PATH in the list guard is given.
ENVIRONMENT_CASES = {
    # names given twice keep every value in order (the program's getenv() finds the first, as
    # without guard), entries without '=' and empty ones stay: execve takes a list, guard passes it
    "odd-entries": ODD_ENVIRONMENT[1:],
    "two": ["GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072"],
    "unknown-between": ["GLIBC_TUNABLES=glibc.malloc.arena_max=2:no.such.tunable=1:glibc.malloc.mmap_max=5:"],
    "empty-items": ["GLIBC_TUNABLES=:glibc.malloc.arena_max=2::glibc.malloc.mmap_max=5"],
    "no-value": ["GLIBC_TUNABLES=glibc.malloc.arena_max:glibc.malloc.mmap_max=5"],
    "empty": ["GLIBC_TUNABLES="],
    "last": ["A=1", "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.mmap_max=5"],
    # one tunable the loader takes, then only separators: its cut form holds every item of its copy
    "trailing-colon": ["GLIBC_TUNABLES=glibc.malloc.arena_max=2:", "B=1"],
    "trailing-colons": ["GLIBC_TUNABLES=glibc.malloc.arena_max=2::"],
    "loader-variables": LOADER_ENVIRONMENT,
}


@pytest.mark.parametrize("mode", [[], ["--watch", "--quiet"]], ids=["exec", "watch"])
@pytest.mark.parametrize("case", ENVIRONMENT_CASES)
def test_the_environment_list_reaches_the_program_entry_for_entry_as_given(environ_program, case, mode):
    # as guard was given it, even what the loader rewrote at guard's own start
    envp = [f"PATH={os.environ['PATH']}", *ENVIRONMENT_CASES[case]]
    done = run_with_environment(environ_program, envp, guard_executable(), *mode, *PASS, "--",
                                environ_program, "dump")
    assert done.returncode == 0, done.stderr
    assert done.stdout == block(envp)
    assert b"GLIBC_TUNABLES" not in done.stderr  # nothing to own up to: the list is whole


# Runs argv (after "--") in a mount namespace of its own with /proc unmounted.
WITHOUT_PROC = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.umount2(b"/proc", 2) != 0:  # MNT_DETACH
    sys.exit(f"umount /proc: {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.mark.parametrize("mode", [[], ["--watch", "--quiet"]], ids=["exec", "watch"])
def test_environment_passes_whole_with_no_proc_mounted(environ_program, mode):
    # guard reads the list the kernel copied from its own stack, not from /proc/self/environ.
    prefix = ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", WITHOUT_PROC]
    envp = [*ODD_ENVIRONMENT, *LOADER_ENVIRONMENT]
    done = subprocess.run([*prefix, *exec_with(environ_program, envp, guard_executable(), *mode,
                                               "--profile", "none", "--", environ_program, "dump")],
                          capture_output=True, cwd="/", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == block(envp)
    probe = subprocess.run([*prefix, "/bin/cat", "/proc/self/environ"], capture_output=True, timeout=30)
    assert probe.returncode == 1 and b"No such file" in probe.stderr  # the control: /proc really is gone


@pytest.fixture
def privileged_python():
    """A copy of this interpreter, setuid root, in a folder any user may enter: started by another
    user it runs in secure mode (AT_SECURE), where glibc's loader drops LD_* and MALLOC_CHECK_ from
    its environment and leaves out of GLIBC_TUNABLES what a privileged program may not be tuned
    with. Removed at the end."""
    folder = tempfile.mkdtemp(prefix="guard-secure-")
    try:
        os.chmod(folder, 0o755)
        python = os.path.join(folder, "python")
        shutil.copy(os.path.realpath(sys.executable), python)
        os.chmod(python, 0o4755)
        yield python
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="a setuid root interpreter takes root to make")
def test_what_the_loader_drops_in_secure_mode_reaches_the_program(environ_program, privileged_python):
    site = os.path.dirname(os.path.dirname(guard.__file__))
    envp = [f"PYTHONPATH={site}", f"PATH={os.environ['PATH']}", "LD_PRELOAD=/nonexistent/lib.so", "MALLOC_CHECK_=3",
            "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.check=3:glibc.malloc.mmap_max=5",
            "LD_LIBRARY_PATH=/nonexistent", "A=1"]
    as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    code = "from guard.cli import main; raise SystemExit(main())"
    done = run_with_environment(environ_program, envp, privileged_python, "-c", code, *PASS, "--",
                                environ_program, "dump", prefix=as_nobody)
    assert done.returncode == 0, done.stderr
    assert done.stdout == block(envp)
    # the control: the loader did drop them from what the interpreter itself has
    seen = run_with_environment(environ_program, envp, privileged_python, "-c",
                                "import os; print(*sorted(os.environ))", prefix=as_nobody)
    names = seen.stdout.decode()
    # it ran and printed its environment's names: what the loader keeps is there
    assert seen.returncode == 0 and {"A", "GLIBC_TUNABLES", "PATH", "PYTHONPATH"} <= set(names.split()), seen
    assert "LD_PRELOAD" not in names and "MALLOC_CHECK_" not in names, seen


@pytest.mark.parametrize("mode", [[], ["--watch", "--quiet"]], ids=["exec", "watch"])
def test_command_is_searched_in_the_first_path_as_getenv_finds_it(environ_program, tmp_path, mode):
    for which in ("first", "second"):
        (tmp_path / which).mkdir()
        probe = tmp_path / which / "guard-probe"
        probe.write_text(f"#!/bin/sh\necho {which}\n")
        probe.chmod(0o755)
    envp = [f"PATH={tmp_path / 'first'}", f"PATH={tmp_path / 'second'}"]
    done = run_with_environment(environ_program, envp, guard_executable(), *mode, *PASS, "--", "guard-probe")
    assert (done.returncode, done.stdout) == (0, b"first\n"), done.stderr


def test_empty_command_name_is_not_found_as_in_the_shell():
    done = run_guard(*PASS, "--", "")
    assert done.returncode == 127
    assert "guard: exec '' failed: No such file or directory" in text(done)


def test_exec_core_compiles_with_strict_warnings(tmp_path):
    csrc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "csrc")
    subprocess.run(["gcc", "-std=gnu99", "-Wall", "-Wextra", "-Werror", "-I", csrc, "-c",
                    os.path.join(csrc, "execve.c"), "-o", str(tmp_path / "execve.o")], check=True)


# --- guard's own output never stops the program ----------------------------------------------

# Writes which of descriptors 0, 1 and 2 it was started with to the file named by its argument.
LIST_FDS = """
import os, sys
def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
started_with = " ".join(str(fd) for fd in (0, 1, 2) if is_open(fd))
with open(sys.argv[1], "w") as f:
    f.write(started_with)
"""


@pytest.mark.parametrize("closed, open_ones", [(">&-", "0 2"), ("2>&-", "0 1"), ("<&- >&- 2>&-", "")])
def test_program_starts_with_the_descriptors_closed_as_they_were(tmp_path, closed, open_ones):
    program, out = tmp_path / "list_fds.py", tmp_path / "fds"
    program.write_text(LIST_FDS)
    # guard writes a report on stderr; with stdout closed, the next file guard opens takes fd 1
    command = (f"exec {guard_executable()} --require 'vm.max_map_count>=0' -- {sys.executable} "
               f"{program} {out} {closed}")
    done = subprocess.run(["sh", "-c", command], capture_output=True, cwd="/", timeout=30)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == open_ones
    assert done.stdout == b""  # guard's lines go to stderr or nowhere, never to the program's stdout


def test_program_starts_when_stderr_is_a_pipe_nobody_reads_any_more(tmp_path):
    marker = tmp_path / "started"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([guard_executable(), *PASS, "--", "touch", str(marker)], stderr=write_end,
                              stdout=subprocess.DEVNULL, cwd="/", timeout=30)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and marker.exists()


def filled_pipe(room=0):
    """(read end, write end) of a blocking pipe filled with pages of 4096 bytes but ``room``."""
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    os.read(read_end, room)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    return read_end, write_end


def test_program_starts_when_stderr_is_a_full_pipe_nobody_reads(tmp_path):
    marker = tmp_path / "started"
    read_end, write_end = filled_pipe()  # guard gets a blocking pipe that is full
    try:
        done = subprocess.run([guard_executable(), *PASS, "--", "touch", str(marker)], stderr=write_end,
                              stdout=subprocess.DEVNULL, cwd="/", timeout=30)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert done.returncode == 0 and marker.exists()


def test_program_starts_when_stderr_has_less_room_than_the_report_and_nobody_reads(tmp_path):
    # One page free: poll() says the pipe is writable, but a blocking write of more than that waits
    # for a reader for good. The report here is over 4 KiB (JSON, every check failing).
    marker = tmp_path / "started"
    read_end, write_end = filled_pipe(room=4096)
    failing = [f"--require={spec}" for spec in ("vm.max_map_count>=99999999", "fs.file-max>=999999999999",
                                                "nofile>=99999999", "kernel.pid_max>=999999999")]
    try:
        done = subprocess.run([guard_executable(), "--mode", "warn", "--format", "json", "--profile", "elasticsearch",
                               *failing, "--", "touch", str(marker)], stderr=write_end, stdout=subprocess.DEVNULL,
                              cwd="/", timeout=30)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert done.returncode == 0 and marker.exists()


def test_signal_ignored_by_whoever_started_guard_stays_ignored():
    # as exec alone and tini leave it (trap '' HUP, nohup); SIGHUP is bit 1 of SigIgn
    done = subprocess.run(["sh", "-c", f"trap '' HUP; exec {guard_executable()} --require "
                           "'vm.max_map_count>=0' -- grep ^SigIgn /proc/self/status"],
                          capture_output=True, cwd="/", timeout=30)
    assert int(done.stdout.split()[1], 16) == 1 << (signal.SIGHUP - 1)
