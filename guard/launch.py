"""Replacing guard with the program: same PID, same argv, same environment, no shell.

Exit codes for a command that cannot be run follow the shell (POSIX 2.8.2, as tini and
dumb-init do): 127 when it is not found, 126 when it is found but cannot be executed.
"""

import errno
import os
import signal
import sys

NOT_FOUND = 127
NOT_EXECUTABLE = 126


def received_environ_block():
    """The environment guard was started with: the NUL-terminated entries execve was given.

    CPython may change its own environment at start (PEP 538 sets LC_CTYPE when the locale is
    C), and the program must not inherit that. The kernel keeps the environment as it was passed
    to execve in /proc/self/environ; setenv() in this process never touches that copy. In the
    bundle, bin/guard starts guard's Python without the image's LD_* variables and passes the
    environment as it received it in a memfd, named by -X guard_environ_fd (bundle/start.c).
    Raises OSError when neither can be read.
    """
    fd = sys._xoptions.get("guard_environ_fd")
    if fd is None:
        with open("/proc/self/environ", "rb") as f:
            return f.read()
    chunks, offset = [], 0
    while True:
        chunk = os.pread(int(fd), 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def original_environ():
    """The environment guard was started with, byte for byte (received_environ_block)."""
    try:
        raw = received_environ_block()
    except OSError:
        return dict(os.environb)
    env = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            env[name] = value
    return env


def reset_signals():
    """Python ignores SIGPIPE and SIGXFSZ at start; an ignored signal survives exec, so without
    this the program would never die of a broken pipe. Put back what a program expects."""
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def exec_failure(program, error):
    """The message and exit code for a command that could not be started.

    A script without #! fails with ENOEXEC (126) and is not handed to /bin/sh as execvp(3) and
    tini would: no shell comes between guard and the program, and Docker itself (runc's execve)
    refuses such an entrypoint with "exec format error", so guard behaves as if it were not there.
    """
    code = NOT_FOUND if error.errno in (errno.ENOENT, errno.ENOTDIR) else NOT_EXECUTABLE
    return code, f"guard: exec {program} failed: {error.strerror or error}"


def exec_program(argv):
    """Become the program; on failure return (exit code, message)."""
    env = original_environ()
    reset_signals()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        return exec_failure(argv[0], e)
    except ValueError as e:  # an embedded NUL byte in an argument: nothing can exec that
        return NOT_EXECUTABLE, f"guard: exec {argv[0]!r} failed: {e}"
