"""guard execs the program: the same PID, argv and environment as if guard were not there."""

import fcntl
import os
import signal
import subprocess
import sys

import pytest

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

# Starts argv[2:] with exactly the environment list in argv[1] (one entry a line): subprocess and
# os.execve take a mapping, which cannot hold a name twice or an entry without '='.
EXECVE_WITH = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def strings(items):
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)
envp = [os.fsencode(entry) for entry in sys.argv[1].split("\\n")]
argv = [os.fsencode(arg) for arg in sys.argv[2:]]
libc.execve(argv[0], strings(argv), strings(envp))
sys.exit(f"execve failed: {os.strerror(ctypes.get_errno())}")
"""


def run_with_environment(envp, *argv):
    return subprocess.run([sys.executable, "-c", EXECVE_WITH, "\n".join(envp), *argv],
                          capture_output=True, cwd="/", timeout=30)


ODD_ENVIRONMENT = [f"PATH={os.environ['PATH']}", "DUP=first", "LANG=C", "DUP=second", "NO_EQUALS_SIGN",
                   "=empty name", "", "SPACED= a  b ", "DUP=third"]


@pytest.mark.parametrize("mode", [[], ["--watch", "--quiet"]], ids=["exec", "watch"])
def test_environment_list_passes_entry_for_entry(mode):
    # Names given twice keep every value in order (the program's getenv() finds the first, as
    # without guard), entries without '=' and empty ones stay: execve takes a list, guard passes it.
    done = run_with_environment(ODD_ENVIRONMENT, guard_executable(), *mode, *PASS, "--", "cat", "/proc/self/environ")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(entry + "\0" for entry in ODD_ENVIRONMENT).encode()


@pytest.mark.parametrize("mode", [[], ["--watch", "--quiet"]], ids=["exec", "watch"])
def test_command_is_searched_in_the_first_path_as_getenv_finds_it(tmp_path, mode):
    for which in ("first", "second"):
        (tmp_path / which).mkdir()
        probe = tmp_path / which / "guard-probe"
        probe.write_text(f"#!/bin/sh\necho {which}\n")
        probe.chmod(0o755)
    envp = [f"PATH={tmp_path / 'first'}", f"PATH={tmp_path / 'second'}"]
    done = run_with_environment(envp, guard_executable(), *mode, *PASS, "--", "guard-probe")
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
