"""execve(2) with the environment as a list, and that list as this process received it: the
Python face of csrc/execve.c (guard._execve).

Only marshals: bytes into NUL-terminated C arrays and back, the call, a negative result into OSError.
"""

import os

from guard._execve import ffi, lib


def _string(item):
    if b"\0" in item:  # C would cut the string there: refuse, as os.execve does
        raise ValueError(f"embedded null byte in [{item!r}]")
    return ffi.new("char[]", item)


def _strings(items):
    """A NULL-terminated char *[] for a list of bytes, and the buffers it points into (keep them)."""
    buffers = [_string(item) for item in items]
    return ffi.new("char *[]", buffers + [ffi.NULL]), buffers


def execve(path, argv, envp):
    """Replace this process with path, given argv and envp exactly (lists of bytes).

    Returns only by raising: OSError with execve's errno (FileNotFoundError, PermissionError...),
    ValueError for an embedded NUL byte.
    """
    c_argv, argv_buffers = _strings(argv)
    c_envp, envp_buffers = _strings(envp)
    rc = lib.guard_execve(_string(path), c_argv, c_envp)
    raise OSError(-rc, os.strerror(-rc), os.fsdecode(path))


def received_environ():
    """The environment this process was started with, as the block of NUL-terminated entries the
    kernel copied at exec, and how many GLIBC_TUNABLES entries the loader cut that could not be
    put back (guard_received_environ). Raises OSError when the block cannot be found."""
    cut = ffi.new("int *")
    size = 1 << 16
    while True:
        out = ffi.new("char[]", size)
        length = lib.guard_received_environ(out, size, cut)
        if length < 0:
            raise OSError(-length, os.strerror(-length))
        if length <= size:
            return ffi.buffer(out, length)[:], cut[0]
        size = length
