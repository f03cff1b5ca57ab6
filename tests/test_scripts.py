"""scripts/: each answers --help with its usage and does nothing else, and refuses an argument
it does not take, naming it, before it does anything; scripts/arm64-emulation leaves binfmt_misc
as it found it."""

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


# scripts/arm64-emulation changes what the whole machine runs: it is tried where nothing it does
# can reach the host. The sandbox is root of a user namespace of its own with a /proc of its own,
# where binfmt_misc is not mounted; mounted there, binfmt_misc is that namespace's own instance
# (Linux 6.7+), empty, and goes with it. The script's real conf and interpreter are used.
EMULATION = os.path.join(REPO, "scripts", "arm64-emulation")
QEMU_AARCH64_CONF = "/usr/lib/binfmt.d/qemu-aarch64.conf"
SANDBOX = r"""
set -u
B=/proc/sys/fs/binfmt_misc
# What binfmt_misc holds: "not mounted", or each handler with its state and flags.
binfmt() {
    if [[ ! -e $B/register ]]; then echo "binfmt: not mounted"; return; fi
    local entry line=""
    for entry in "$B"/*; do
        case ${entry##*/} in register|status) continue ;; esac
        line+="${entry##*/} $(head -n 1 "$entry") $(sed -n 's/^flags: //p' "$entry"); "
    done
    echo "binfmt: ${line% }"
}
# Debian's line for qemu-aarch64 under another NAME and FLAGS, as a host might have it.
register() {
    sed "s/^:qemu-aarch64:/:$1:/; s/:[A-Z]*\$/:$2/" /usr/lib/binfmt.d/qemu-aarch64.conf >"$B/register"
}
# A holder: a process that outlives the hold, as scripts/test's shell does.
holder() {
    sleep 1000 &
}
# binfmt once it says $1, or after 10 s.
until_binfmt() {
    local _
    for _ in $(seq 1 100); do [[ $(binfmt) == "binfmt: $1" ]] && break; sleep 0.1; done
    binfmt
}
"""


@pytest.fixture
def sandbox(tmp_path):
    """run(script): bash script in the sandbox, with scripts/arm64-emulation as $E, its state in
    tmp_path ($T): (exit status, output and errors as lines, in order)."""
    env = {**os.environ, "E": EMULATION, "T": str(tmp_path), "GUARD_ARM64_STATE": str(tmp_path / "state")}

    def run(script):
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--mount-proc",
                               "bash", "-c", SANDBOX + script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120, env=env)
        return done.returncode, done.stdout.splitlines()

    reason = None
    if not os.path.exists(QEMU_AARCH64_CONF):
        reason = f"{QEMU_AARCH64_CONF} is missing (scripts/install-deps installs qemu-user-static)"
    else:
        status, lines = run('mount -t binfmt_misc binfmt_misc "$B" && binfmt')
        if (status, lines) != (0, ["binfmt: "]):
            reason = f"no binfmt_misc of its own in a user namespace (Linux 6.7+): {lines}"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return run


def test_arm64_emulation_removes_what_it_added_when_the_last_holder_lets_go(sandbox):
    status, lines = sandbox("""
        binfmt; holder; a=$!; holder; b=$!
        $E hold $a; $E hold $b; binfmt
        $E release $a; binfmt
        $E release $b; binfmt
    """)
    assert status == 0, lines
    assert [line for line in lines if line.startswith("binfmt:")] == [
        "binfmt: not mounted",
        "binfmt: qemu-aarch64 enabled POF;",  # mounted, and Debian's handler registered
        "binfmt: qemu-aarch64 enabled POF;",  # b still holds it
        "binfmt: not mounted",
    ]


def test_arm64_emulation_a_holder_killed_with_sigkill_lets_go_all_the_same(sandbox):
    # No trap runs on SIGKILL: what hold added goes once its holder is gone, without a next run;
    # while another holder lives, it stays.
    status, lines = sandbox("""
        holder; a=$!; holder; b=$!
        $E hold $a; $E hold $b
        kill -9 $a; sleep 3; binfmt
        kill -9 $b; until_binfmt "not mounted"
    """)
    assert status == 0, lines
    assert [line for line in lines if line.startswith("binfmt:")] == [
        "binfmt: qemu-aarch64 enabled POF;", "binfmt: not mounted"]


def test_arm64_emulation_a_run_after_a_killed_one_removes_what_the_killed_one_added(sandbox):
    status, lines = sandbox("""
        holder; a=$!; $E hold $a; holder; b=$!; kill -9 $a; $E hold $b; binfmt
        $E release $b; binfmt
    """)
    assert status == 0, lines
    assert [line for line in lines if line.startswith("binfmt:")] == [
        "binfmt: qemu-aarch64 enabled POF;", "binfmt: not mounted"]


@pytest.mark.parametrize("name", ["qemu-aarch64", "aarch64"])
def test_arm64_emulation_uses_the_hosts_own_handler_and_leaves_it(sandbox, name):
    status, lines = sandbox(f"""
        mount -t binfmt_misc binfmt_misc "$B"; register {name} F; binfmt
        holder; a=$!; $E hold $a; binfmt; $E release $a; binfmt
    """)
    assert status == 0, lines
    assert lines == [f"binfmt: {name} enabled F;"] * 3


def test_arm64_emulation_refuses_a_hosts_handler_without_f_and_leaves_it(sandbox):
    status, lines = sandbox("""
        mount -t binfmt_misc binfmt_misc "$B"; register qemu-aarch64 PO
        holder; a=$!; $E hold $a; echo "exit $?"; binfmt
    """)
    assert lines[1:] == ["exit 1", "binfmt: qemu-aarch64 enabled PO;"], lines
    assert lines[0].startswith("scripts/arm64-emulation: the host's handler /proc/sys/fs/binfmt_misc/qemu-aarch64 "
                               "has flags 'PO', without F: containers cannot reach its interpreter. Left as it is"), lines


def test_arm64_emulation_refuses_a_hosts_disabled_handler_of_the_same_name_and_leaves_it(sandbox):
    status, lines = sandbox("""
        mount -t binfmt_misc binfmt_misc "$B"; register qemu-aarch64 POF; echo 0 >"$B/qemu-aarch64"
        holder; a=$!; $E hold $a; echo "exit $?"; binfmt
    """)
    assert lines == [
        "scripts/arm64-emulation: the host has a handler /proc/sys/fs/binfmt_misc/qemu-aarch64 that is disabled: "
        "left as it is; enable it (echo 1 > /proc/sys/fs/binfmt_misc/qemu-aarch64) to build and test the arm64 "
        "bundle",
        "exit 1", "binfmt: qemu-aarch64 disabled POF;"]


def test_arm64_emulation_leaves_a_handler_registered_meanwhile_and_so_the_mount(sandbox):
    status, lines = sandbox("""
        holder; a=$!; $E hold $a; register other F; $E release $a; binfmt
    """)
    assert status == 0, lines
    assert lines[-1] == "binfmt: other enabled F;"


def test_arm64_emulation_forgets_what_an_earlier_boot_wrote_down(sandbox, tmp_path):
    # A state left from before a reboot names a handler as added; this boot's host registered
    # its own since, under the same name: it is the host's, and stays.
    state = tmp_path / "state"
    (state / "holders").mkdir(parents=True)
    (state / "boot").write_text("00000000-0000-0000-0000-000000000000\n")
    (state / "added-handler").write_text("/proc/sys/fs/binfmt_misc/qemu-aarch64\n")
    (state / "mounted").write_text("/proc/sys/fs/binfmt_misc\n")
    (state / "holders" / "1").write_text("1 1\n")
    status, lines = sandbox("""
        mount -t binfmt_misc binfmt_misc "$B"; register qemu-aarch64 POF
        holder; a=$!; $E hold $a; $E release $a; binfmt
    """)
    assert status == 0, lines
    assert lines == ["binfmt: qemu-aarch64 enabled POF;"]


def test_arm64_emulation_with_no_place_for_its_state_changes_nothing(sandbox):
    status, lines = sandbox("""
        holder; a=$!; GUARD_ARM64_STATE=/proc/no-such-place $E hold $a; echo "exit $?"; binfmt
    """)
    assert lines == ["scripts/arm64-emulation: cannot write its state to /proc/no-such-place (GUARD_ARM64_STATE): "
                     "nothing was registered; it needs a writable /run", "exit 1", "binfmt: not mounted"]


def test_arm64_emulation_a_holder_killed_but_not_yet_waited_for_has_let_go(sandbox):
    # A zombie: killed, its parent (a sleep, which waits for nothing) has not reaped it.
    status, lines = sandbox("""
        (sleep 1000 & echo $! >"$T/holder"; exec sleep 1000) & parent=$!
        until [[ -s $T/holder ]]; do sleep 0.1; done; a=$(cat "$T/holder")
        $E hold $a; kill -9 $a; until_binfmt "not mounted"; kill $parent
    """)
    assert status == 0, lines
    assert [line for line in lines if line.startswith("binfmt:")] == ["binfmt: not mounted"]
