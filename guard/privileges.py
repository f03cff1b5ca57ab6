"""Giving up root for all but one capability: guard maps --user, the audit DaemonSet's identity.

Counting another user's maps passes the kernel's ptrace access check (PTRACE_MODE_READ_FSCREDS):
the reader's fsuid must match the target's uids, or the reader hold CAP_SYS_PTRACE. Root with
CAP_SYS_PTRACE also reads, as the owner, every root process's environment and memory and every
root-owned file of every container through /proc/PID/root. A user of its own with
CAP_SYS_PTRACE alone reads the maps and nothing that file modes keep from it. Kubernetes cannot
start a container that way (a non-root container's added capabilities stay in its bounding set:
no ambient capabilities), so guard starts as root with CAP_SETUID, CAP_SETGID and CAP_SYS_PTRACE
and becomes that user here, before it reads anything. The capability passes the same check for
system calls that reach much further than the maps (ptrace, process_vm_readv: every process's
memory), so a seccomp filter takes those away first (csrc/confine.c). Reference:
capabilities(7), "Effect of user ID changes on capabilities"; ptrace(2), "Ptrace access mode
checking".
"""

import os

from guard.checks import decimal_number

CAP_SYS_PTRACE = 19  # include/uapi/linux/capability.h
KEPT = 1 << CAP_SYS_PTRACE
_PR_SET_KEEPCAPS = 8  # include/uapi/linux/prctl.h
_CAPABILITY_VERSION_3 = 0x20080522  # two 32-bit words per set


def parse_user(text):
    """(uid, gid) from "UID" or "UID:GID", numbers only (a name would need the image's user
    database); None when text is not that."""
    uid, _, gid = text.partition(":")
    if gid == "" and ":" in text:
        return None
    # from 1 (not root) to 2**32 - 2 (not (uid_t) -1); more digits than that are refused, not parsed
    uid, gid = decimal_number(uid, 1, (1 << 32) - 2), decimal_number(gid or uid, 1, (1 << 32) - 2)
    return None if uid is None or gid is None else (uid, gid)


class Unconfined(OSError):
    """The filter that keeps CAP_SYS_PTRACE to the maps could not be set: guard's user and
    capabilities are still those it started with."""


def become(uid, gid):
    """Become uid:gid with no supplementary group, keeping CAP_SYS_PTRACE (effective and
    permitted) when guard holds it and no other capability, with the system calls that reach into
    other processes refused; OSError naming the call that failed (Unconfined: before any change)."""
    import ctypes

    from guard._confine import lib  # imported as root: the user may not read a pip install

    # First, before the switch: a filter that cannot be set leaves guard the user it started as.
    refused = lib.guard_deny_tracing()
    if refused < 0:
        raise Unconfined(-refused, f"system calls that reach into other processes cannot be refused "
                                   f"(seccomp: {os.strerror(-refused)})")
    libc = ctypes.CDLL(None, use_errno=True)

    def call(result, what):
        if result != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{what}: {os.strerror(code)}")

    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    held = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; low words, then high
    call(libc.capget(header, held), "capget")
    kept = KEPT if held[1] & KEPT else 0
    # Without PR_SET_KEEPCAPS, leaving uid 0 clears the permitted set; with it, the effective set
    # alone is cleared, and capset raises the one capability kept again.
    call(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise OSError(e.errno, f"setting the user and groups: {e.strerror}") from None
    finally:
        libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)
    call(libc.capset(header, (ctypes.c_uint32 * 6)(kept, kept, 0, 0, 0, 0)), "capset")
    return bool(kept)
