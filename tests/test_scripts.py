"""scripts/: each answers --help with its usage and does nothing else, and refuses an argument
it does not take, naming it, before it does anything."""

import os
import shutil
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SCRIPTS = sorted(name for name in os.listdir(os.path.join(REPO, "scripts"))
                 if os.access(os.path.join(REPO, "scripts", name), os.X_OK))
# All a script needs to say its usage. Anything it would do beyond that (apt-get, docker,
# debootstrap, python3, pip, mktemp) is missing from PATH and would fail.
TOOLS = ("bash", "sed", "dirname", "basename")


@pytest.fixture
def clone(tmp_path):
    """A copy of scripts/ in an otherwise empty folder (what a script would make there shows),
    and a PATH with TOOLS alone."""
    shutil.copytree(os.path.join(REPO, "scripts"), tmp_path / "scripts")
    (tmp_path / "bin").mkdir()
    for tool in TOOLS:
        (tmp_path / "bin" / tool).symlink_to(shutil.which(tool))
    return tmp_path


def run(clone, name, *args):
    done = subprocess.run([str(clone / "bin" / "bash"), str(clone / "scripts" / name), *args], cwd=clone,
                          env={"PATH": str(clone / "bin")}, capture_output=True, text=True, timeout=30)
    assert sorted(os.listdir(clone)) == ["bin", "scripts"], f"scripts/{name} made something"
    return done


def test_every_script_is_covered():
    assert SCRIPTS == ["arm64-emulation", "base-image", "install", "install-deps", "start-docker", "test", "venv"]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_the_usage_and_does_nothing_else(clone, name, flag):
    done = run(clone, name, flag)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"usage: scripts/{name}"), done.stdout
    assert "\n\n" in done.stdout and not done.stdout.endswith("\n\n")  # the usage line, then the why


@pytest.mark.parametrize("name, args, message", [
    ("arm64-emulation", [], "takes hold PID or release PID, but was given []"),
    ("arm64-emulation", ["register", "1"], "takes hold PID or release PID, but was given [register 1]"),
    ("arm64-emulation", ["hold", "$$"], "PID must be a process id, but was [$$]"),
    ("base-image", ["--build"], "the one option is --build-base, but was given [--build]"),
    ("base-image", ["--build-base", "x"], "the one option is --build-base, but was given [--build-base x]"),
    ("install", ["test"], "EXTRAS must be one word in brackets, such as '[test]', but was [test]"),
    ("install", ["[test]", "x"], "EXTRAS must be one word in brackets, such as '[test]', but was [[test] x]"),
    ("install-deps", ["now"], "takes no arguments, but was given [now]"),
    ("start-docker", ["--force"], "takes no arguments, but was given [--force]"),
    ("venv", ["[test]"], "takes no arguments, but was given [[test]]"),
])
def test_an_argument_a_script_does_not_take_is_a_usage_error_before_anything(clone, name, args, message):
    done = run(clone, name, *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"scripts/{name}: {message}\nusage: scripts/{name}"), done.stderr
