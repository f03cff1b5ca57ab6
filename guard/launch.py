"""Replacing guard with the program: same PID, same argv, same environment, no shell.

Exit codes for a command that cannot be run follow the shell (POSIX 2.8.2, as tini and
dumb-init do): 127 when it is not found, 126 when it is found but cannot be executed.
"""

import _signal as signal  # the C module: the signal module wraps it in enums, a tenth of guard's start
import errno
import os
import sys

from guard import execve, report

NOT_FOUND = 127
NOT_EXECUTABLE = 126


def _read_memfd(fd):
    chunks, offset = [], 0
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def received_environ_block():
    """The environment guard was started with, as the NUL-terminated entries execve was given,
    and a sentence for the report when that cannot be had exactly (else None).

    The process's own environment is no longer that list when guard runs: glibc's loader puts
    its own copy of GLIBC_TUNABLES in place of the one given (and in secure mode removes entries),
    and CPython sets LC_CTYPE when it coerces the C locale (PEP 538). The strings the kernel
    copied at exec are still on the stack, and csrc/execve.c reads them from there, with the one
    rewrite the loader makes in place undone; /proc is not needed. In the bundle, bin/guard starts
    guard's Python without the image's LD_* variables and passes the environment as it received
    it in a memfd, named by -X guard_environ_fd (bundle/start.c).
    """
    fd = sys._xoptions.get("guard_environ_fd")
    if fd is not None:
        return _read_memfd(int(fd)), None
    try:
        block, cut = execve.received_environ()
    except OSError:
        pass
    else:
        if cut:
            return block, ("glibc's loader cut GLIBC_TUNABLES at guard's start (secure mode) and it could not be "
                           "put back: the program gets it as the loader left it")
        return block, None
    # A C library that does not say where the stack began (musl): the kernel's copy, as it reads it.
    try:
        with open("/proc/self/environ", "rb") as f:
            return f.read(), None
    except OSError as e:
        items = b"".join(name + b"=" + value + b"\0" for name, value in os.environb.items())
        return items, (f"the environment guard was started with cannot be read (/proc/self/environ: {e.strerror}): "
                       "the program gets guard's own, one value a name, without entries that have no '=', "
                       "and with what Python set in it at start")


def original_environ():
    """The environment guard was started with: the list execve() was given, entry for entry. When
    it cannot be had exactly, the report says so (received_environ_block()'s sentence) and what
    the program gets instead.

    os.environ would not do: it keeps one value per name (the last, where the program's getenv()
    finds the first) and drops entries without '='. The block keeps each NUL-terminated entry as
    it was given.
    """
    raw, caveat = received_environ_block()
    if caveat:
        report.write(f"{report.PREFIX}{caveat}\n")
    return raw[:-1].split(b"\0") if raw else []


def path_variable(envp):
    """The first PATH entry's value in envp, which getenv(3) finds, or None when there is none."""
    for entry in envp:
        if entry.startswith(b"PATH="):
            return entry[5:]
    return None


def search_path(envp):
    """The directories execvp(3) searches: envp's PATH, or the default PATH when there is none."""
    path = path_variable(envp)
    return os.get_exec_path({} if path is None else {b"PATH": path})


def execvpe(file, argv, envp):
    """Become file (searched in PATH when it has no slash) with argv and the envp list as given.

    Returns only by raising. The search is execvp(3)'s and CPython's os.execvpe's: the error of
    the first candidate that exists but cannot be run wins over not-found, but unlike execvp(3)
    a file without #! (ENOEXEC) is not handed to /bin/sh (exec_failure says why).
    """
    name = os.fsencode(file)
    args = [os.fsencode(arg) for arg in argv]
    if not name:  # execvp(3) and the shell: an empty name is not found (127), not a directory
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), file)
    if b"/" in name:
        execve.execve(name, args, envp)
    first_failure = not_found = None
    for directory in search_path(envp):
        try:
            execve.execve(os.path.join(os.fsencode(directory), name), args, envp)
        except (FileNotFoundError, NotADirectoryError) as e:
            not_found = e
        except OSError as e:
            first_failure = first_failure or e
    raise first_failure or not_found


# CPython ignores these at start, before any Python code runs (signal_install_handlers() in
# Modules/signalmodule.c, initsigs() in older releases); an ignored signal survives exec.
PYTHON_IGNORES = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))


def reset_signals():
    """Put back the default for the signals Python ignores, or the program would never die of a
    broken pipe.

    Every other ignored signal was ignored by whoever started guard (nohup, trap '' HUP) and
    stays ignored, as exec and tini leave it. Whether SIGPIPE and SIGXFSZ were ignored too is lost
    at Python's start, before guard runs: they start at the default.
    """
    for signum in PYTHON_IGNORES:
        signal.signal(signum, signal.SIG_DFL)


def exec_failure(program, error, envp=()):
    """The message and exit code for a command that could not be started, in the shell's words.

    A script without #! fails with ENOEXEC (126) and is not handed to /bin/sh as execvp(3) and
    tini would: no shell comes between guard and the program, and Docker itself (runc's execve)
    refuses such an entrypoint with "exec format error", so guard behaves as if it were not there.
    A name without a slash that is nowhere in PATH says which PATH was searched (envp's, the one
    the program would have had); execve() says EACCES for a directory, where the shell says what
    it is.
    """
    if isinstance(error, ValueError):  # an embedded NUL byte in an argument: nothing can exec that
        return NOT_EXECUTABLE, f"guard: exec {program!r} failed: {error}"
    shown = program or repr(program)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        if program and "/" not in program:
            return NOT_FOUND, f"guard: exec {shown} failed: not found in PATH [{_path_text(envp)}]"
        return NOT_FOUND, f"guard: exec {shown} failed: {error.strerror or error}"
    if error.errno == errno.EACCES and error.filename and os.path.isdir(error.filename):
        return NOT_EXECUTABLE, f"guard: exec {shown} failed: {error.filename} is a directory"
    return NOT_EXECUTABLE, f"guard: exec {shown} failed: {error.strerror or error}"


def _path_text(envp):
    path = path_variable(envp)
    return f"{os.defpath}, the default: no PATH is set" if path is None else os.fsdecode(path)


def exec_program(argv):
    """Become the program; on failure return (exit code, message)."""
    envp = original_environ()
    reset_signals()
    try:
        execvpe(argv[0], argv, envp)
    except (OSError, ValueError) as e:
        return exec_failure(argv[0], e, envp)
