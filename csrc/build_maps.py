"""cffi build script for guard._maps (out-of-line API mode), named by setup.py's cffi_modules.

csrc/maps.h is both what ffi.cdef() is given and what the C includes; run from the project root.
"""

import os

from cffi import FFI

CSRC = os.path.relpath(os.path.dirname(os.path.abspath(__file__)))

ffibuilder = FFI()
with open(os.path.join(CSRC, "maps.h")) as header:
    ffibuilder.cdef(header.read())
ffibuilder.set_source(
    "guard._maps",
    '#include "maps.h"',
    sources=[os.path.join(CSRC, "maps.c")],
    include_dirs=[CSRC],
    # -Werror is for the project's own builds (tests/test_maps_c.py): a user's newer compiler
    # may warn about something new, and that must not fail their install.
    extra_compile_args=["-std=gnu99", "-O2", "-Wall", "-Wextra"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
