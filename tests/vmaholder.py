"""Child processes holding a known number of memory mappings (vma_holder.c), for tests and bench/."""

import contextlib
import os
import subprocess

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vma_holder.c")


def build(directory):
    """Compile vma_holder.c into ``directory``; the path of the program."""
    program = os.path.join(directory, "vma_holder")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", program, SOURCE], check=True)
    return program


@contextlib.contextmanager
def holding(program, *args):
    """Run ``program args`` until it has made its mappings; yield (process, mappings made).

    The holder keeps its mappings until its stdin closes; it is ended by pid in ``finally``.
    """
    proc = subprocess.Popen([program, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline().split()
        if ready[:1] != ["ready"]:
            raise RuntimeError(f"{program} {args} did not start: exit {proc.wait()}")
        yield proc, int(ready[1])
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
