"""cffi build script (out-of-line API mode) for guard's C core, named by setup.py's cffi_modules.

csrc/NAME.h is both what ffi.cdef() is given and what csrc/NAME.c includes; the module is
guard._NAME. Run from the project root.
"""

import os

from cffi import FFI

CSRC = os.path.relpath(os.path.dirname(os.path.abspath(__file__)))


def ffibuilder(name, **options):
    ffi = FFI()
    with open(os.path.join(CSRC, f"{name}.h")) as header:
        ffi.cdef(header.read())
    ffi.set_source(
        f"guard._{name}",
        f'#include "{name}.h"',
        sources=[os.path.join(CSRC, f"{name}.c")],
        include_dirs=[CSRC],
        # -Werror is for the project's own builds (tests/test_maps_c.py, tests/test_exec.py): a
        # user's newer compiler may warn about something new, and that must not fail their install.
        extra_compile_args=["-std=gnu99", "-O2", "-Wall", "-Wextra"],
        **options,
    )
    return ffi


maps = ffibuilder("maps", libraries=["pthread"])  # the map scanner (csrc/maps.c)
execve = ffibuilder("execve")  # exec with the environment as a list (csrc/execve.c)
confine = ffibuilder("confine")  # maps --user's seccomp filter (csrc/confine.c)

if __name__ == "__main__":
    maps.compile(verbose=True)
    execve.compile(verbose=True)
    confine.compile(verbose=True)
