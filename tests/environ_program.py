"""tests/environ.c: execve with an exact environment list, and a dump of the list a program got."""

import os
import shutil
import subprocess

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "environ.c")


def build(directory):
    """Compile environ.c into ``directory``, static so that it runs in any image; its path.

    musl's start-up rewrites no variable, where glibc's loader rewrites GLIBC_TUNABLES in place
    and, in secure mode, drops LD_* from the list a program sees."""
    program = os.path.join(directory, "environ")
    compiler = "musl-gcc" if shutil.which("musl-gcc") else "gcc"
    subprocess.run([compiler, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", program, SOURCE], check=True)
    return program


def exec_with(program, envp, *argv):
    """The argv that runs argv with exactly the environment list envp (strings or bytes)."""
    return [program, "exec", *envp, "--", *argv]


def block(envp):
    """What `environ dump` writes for a program that got envp."""
    return b"".join((e if isinstance(e, bytes) else e.encode()) + b"\0" for e in envp)
