"""guard maps --user's identity (guard/privileges.py, csrc/confine.c): another user's maps are
read, and nothing CAP_SYS_PTRACE would open beside them: no other process's memory through
process_vm_readv(2), no ptrace(2), whatever the system call's way in."""

import os
import platform
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "..", "csrc")
AUDIT_USER = 43210  # deploy/kubernetes/audit's

# Run by the installed guard's interpreter as root: becomes the audit's user as guard maps --user
# does, then tries each way into the target process (argv[1]), one line per way.
REACH = r"""
import ctypes, os, sys
from guard import privileges

privileges.become(%d, %d)
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)

def said(ok):
    return "yes" if ok else os.strerror(ctypes.get_errno())

with open(f"/proc/{pid}/maps") as f:
    print("maps", "yes" if f.read(1) else "empty")
# env_start and env_end, fields 50 and 51 of /proc/PID/stat (proc(5)): where its environment lies
fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
start, end = int(fields[47]), int(fields[48])

class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]

buffer = ctypes.create_string_buffer(end - start)
local, remote = iovec(ctypes.addressof(buffer), end - start), iovec(start, end - start)
read = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("process_vm_readv", said(read > 0 and b"TOKEN=secret" in buffer.raw))
PTRACE_SEIZE = 0x4206  # attaches without stopping it; ended by this process's exit
print("ptrace", said(libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0))
""" % (AUDIT_USER, AUDIT_USER)


@pytest.fixture
def root_process():
    """A process of root's with a secret in its environment: a database's, on the same node."""
    if os.geteuid() != 0:
        pytest.skip("needs root, as the DaemonSet starts guard")
    target = subprocess.Popen(["sleep", "60"], env={"TOKEN": "secret"})
    try:
        yield target.pid
    finally:
        target.kill()
        target.wait()


def test_the_user_reads_maps_but_neither_memory_nor_ptrace_reach_another_process(root_process):
    # CAP_SYS_PTRACE, kept for the maps, also passes the access check of process_vm_readv and
    # ptrace: the audit's user read a root process's environment and could attach to it (and
    # write its memory). guard's seccomp filter refuses those calls after the switch.
    done = subprocess.run([sys.executable, "-c", REACH, str(root_process)], capture_output=True, text=True,
                          timeout=30, cwd="/")  # the installed guard, not the clone's
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["maps yes", "process_vm_readv Operation not permitted",
                                        "ptrace Operation not permitted"]


def test_the_filter_refuses_every_way_into_a_process_on_its_own(tmp_path):
    # csrc/confine.c compiled apart, with strict warnings: after guard_deny_tracing(), each
    # system call it lists fails with EPERM, through the native entry and, on x86-64, the 32-bit
    # and x32 ones too, while reading the process's own maps still works.
    program = str(tmp_path / "confine_check")
    subprocess.run(["gcc", "-std=gnu99", "-Wall", "-Wextra", "-Werror", "-O1", "-I", CSRC, "-o", program,
                    os.path.join(HERE, "confine_check.c"), os.path.join(CSRC, "confine.c")], check=True)
    done = subprocess.run([program], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    lines = done.stdout.splitlines()
    assert lines[:2] == ["before: ptrace: yes", "confined: 0"], lines
    refused = ["ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise",
               "get_robust_list", "perf_event_open", "move_pages", "migrate_pages"]
    if platform.machine() == "x86_64":
        refused += ["i386 ptrace", "x32 ptrace"]
    assert lines[2:] == [f"{name}: Operation not permitted" for name in refused] + ["own maps: yes"]
