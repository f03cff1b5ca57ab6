"""csrc/maps.c on its own: strict warnings, and every path once under ASan/UBSan and valgrind."""

import os
import shutil
import subprocess

import pytest

from test_maps import ANON, FILE, GATE, crafted_root

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "..", "csrc")
SOURCES = [os.path.join(HERE, "maps_check.c"), os.path.join(CSRC, "maps.c")]
STRICT = ["gcc", "-std=gnu99", "-Wall", "-Wextra", "-Werror", "-I", CSRC, "-pthread"]


@pytest.fixture
def crafted(tmp_path):
    # A text longer than the first read and the buffer, lines cut everywhere, a vanished pid, and
    # maps that are a FIFO (refused, never waited on).
    root = crafted_root(tmp_path, {1: "", 2: (FILE * 150 + ANON * 400) * 3 + GATE, 3: None, 4: ANON, 5: None})
    os.mkfifo(os.path.join(root, "5", "maps"))
    return root


def build(tmp_path, *flags):
    program = str(tmp_path / "maps_check")
    subprocess.run([*STRICT, *flags, "-o", program, *SOURCES], check=True)
    return program


def test_c_core_under_address_and_undefined_behaviour_sanitizers(tmp_path, crafted):
    program = build(tmp_path, "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                    "-fno-sanitize-recover=all")
    run = subprocess.run([program, "/proc", crafted], capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == "maps_check: ok\n"


def test_c_core_under_valgrind(tmp_path, crafted):
    if shutil.which("valgrind") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("valgrind is not installed (scripts/install-deps installs it)")
        pytest.skip("valgrind is not installed")
    program = build(tmp_path, "-O0", "-g")
    run = subprocess.run(["valgrind", "--error-exitcode=99", "--leak-check=full", "-q",
                          program, "/proc", crafted], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "maps_check: ok\n"
