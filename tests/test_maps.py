"""The map scanner (guard.maps over csrc/maps.c) counts what the kernel counts: mm->map_count."""

import errno
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmaholder
from guard import maps
from hostsettings import host_settings_unchanged

def _kernel_has_procmap_query():
    """PROCMAP_QUERY came with Linux 6.11; older kernels answer ENOTTY and guard reads text."""
    try:
        maps.count(os.getpid(), mode="ioctl")
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL):
            return False
        raise
    return True


# The forced ioctl path only where the kernel has it; auto falls back to text everywhere.
MODES = ("auto", "text", "ioctl") if _kernel_has_procmap_query() else ("auto", "text")
GATE = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
ANON = "7f0000000000-7f0000001000 r--p 00000000 00:00 0 \n"
FILE = "7f0000001000-7f0000002000 r--p 00000000 fe:00 4242                       /usr/lib/libfoo.so\n"


@pytest.fixture(scope="session")
def holder(tmp_path_factory):
    return vmaholder.build(tmp_path_factory.mktemp("holder"))


def counts_by_mode(pid):
    return {mode: maps.count(pid, mode=mode) for mode in MODES}


def assert_all_paths_agree(pid, scan=True):
    """Every path gives one number: the text's lines less the [vsyscall] line on x86-64.

    scan=False for this process, whose scan buffer is itself a new mapping.
    """
    counts = counts_by_mode(pid)
    assert len(set(counts.values())) == 1, counts
    with open(f"/proc/{pid}/maps") as f:
        lines = f.read().splitlines()
    assert counts["auto"] == len(lines) - (lines[-1].endswith("[vsyscall]") if lines else 0)
    if scan:  # a scan takes the ioctl first where a count takes text first
        assert maps.scan().counts[pid] == counts["auto"]
    return counts["auto"]


def test_guard_itself_counts_the_same_on_every_path():
    assert assert_all_paths_agree(os.getpid(), scan=False) > 10


def test_count_at_the_limit_is_the_kernels_own_number(holder):
    # do_mmap() refuses a new mapping once mm->map_count > vm.max_map_count (mm/mmap.c), so a
    # process that maps single pages until ENOMEM ends with exactly max_map_count + 1 mappings.
    with host_settings_unchanged():
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with vmaholder.holding(holder, "fill") as (proc, made):
            assert made > 0
            assert counts_by_mode(proc.pid) == {mode: limit + 1 for mode in MODES}


def test_child_holding_60k_anonymous_mappings(holder):
    with vmaholder.holding(holder, 0, "anon") as (empty, _):
        base = assert_all_paths_agree(empty.pid)
    with vmaholder.holding(holder, 60000, "anon") as (proc, made):
        assert assert_all_paths_agree(proc.pid) == base + made == base + 60000


def test_child_holding_10k_file_backed_mappings(holder, tmp_path):
    with vmaholder.holding(holder, 0, "anon") as (empty, _):
        base = assert_all_paths_agree(empty.pid)
    with vmaholder.holding(holder, 10000, "file", tmp_path / "data") as (proc, made):
        assert assert_all_paths_agree(proc.pid) == base + made == base + 10000


def test_redis_server_counts_the_same_on_every_path(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (scripts/install-deps installs it)")
        pytest.skip("redis-server is not installed")
    socket, log = tmp_path / "redis.sock", tmp_path / "redis.log"
    proc = subprocess.Popen([server, "--port", "0", "--unixsocket", str(socket), "--save", "",
                             "--dir", str(tmp_path), "--logfile", str(log)])
    try:
        # Redis creates its socket before its background threads (bioInit in InitServerLast), each
        # of which maps a stack: only once it says it is ready does its count hold still.
        deadline = time.monotonic() + 10
        while not (log.exists() and "ready to accept connections" in log.read_text().lower()):
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        assert assert_all_paths_agree(proc.pid) >= 20
    finally:
        proc.kill()
        proc.wait()


# An interpreter emulated by QEMU's user mode, as an arm64 image runs on an amd64 host (or the
# reverse): QEMU passes open and read of another process's maps to the kernel, but answers
# PROCMAP_QUERY, which it does not translate, with ENOSYS (Debian 12's 7.2), not the kernel's
# ENOTTY. The host's own architecture emulated here makes the same syscalls go through QEMU.
QEMU_OF_THIS_MACHINE = f"qemu-{platform.machine()}-static"  # Debian's qemu-user-static
COUNT_UNDER_EMULATION = """
import errno, json, sys
from guard import maps
pid = int(sys.argv[1])
try:
    maps.count(pid, mode="ioctl")
    ioctl = 0
except OSError as e:
    ioctl = e.errno
print(json.dumps({"ioctl": ioctl, "auto": maps.count(pid), "scan": maps.scan().counts.get(pid)}))
"""


def test_under_qemu_user_emulation_without_the_ioctl_counts_fall_back_to_text(holder, tmp_path):
    qemu = shutil.which(QEMU_OF_THIS_MACHINE)
    if qemu is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{QEMU_OF_THIS_MACHINE} is not installed (scripts/install-deps installs it)")
        pytest.skip(f"{QEMU_OF_THIS_MACHINE} is not installed")
    # File-backed mappings: a count goes from text to the ioctl after its first page, a scan
    # starts with the ioctl; both must go on as text.
    with vmaholder.holding(holder, 1000, "file", tmp_path / "data") as (proc, made):
        kernel = maps.count(proc.pid, mode="text")
        emulated = subprocess.run([qemu, sys.executable, "-c", COUNT_UNDER_EMULATION, str(proc.pid)],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert emulated.returncode == 0, emulated.stderr
    counts = json.loads(emulated.stdout)
    assert counts["ioctl"] in (errno.ENOSYS, errno.ENOTTY), counts  # the ioctl is not there
    assert kernel >= made == 1000
    assert (counts["auto"], counts["scan"]) == (kernel, kernel), counts


def test_zombie_and_kernel_thread_have_no_mappings():
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while not open(f"/proc/{proc.pid}/stat").read().split(") ")[1].startswith("Z"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert counts_by_mode(proc.pid) == {mode: 0 for mode in MODES}
        assert maps.scan().counts[proc.pid] == 0
    finally:
        proc.wait()
    kthreadd = 2  # the parent of all kernel threads, where /proc shows the host's
    if open(f"/proc/{kthreadd}/comm").read().strip() == "kthreadd":
        assert counts_by_mode(kthreadd) == {mode: 0 for mode in MODES}


def test_missing_pid_is_process_lookup_error(tmp_path):
    with pytest.raises(ProcessLookupError):
        maps.count(2**22 + 1)
    (tmp_path / "7").mkdir()  # the directory of a process that exits before its maps are read
    with pytest.raises(ProcessLookupError):
        maps.count(7, proc_root=str(tmp_path))


def crafted_root(tmp_path, processes):
    """A proc root with /PID/maps holding the given text (None: the pid vanished, no maps)."""
    for pid, text in processes.items():
        (tmp_path / str(pid)).mkdir()
        if text is not None:
            (tmp_path / str(pid) / "maps").write_text(text)
    for name in ("self", "sys", "1x"):
        (tmp_path / name).mkdir()
    return str(tmp_path)


def test_crafted_tree_empty_gate_vanished_and_unreadable(tmp_path):
    root = crafted_root(tmp_path, {
        10: "",
        11: ANON + FILE + GATE,
        12: ANON * 3,
        13: None,
    })
    (tmp_path / "14").mkdir()
    (tmp_path / "14" / "maps").mkdir()  # unreadable: read() gives EISDIR
    for mode in ("auto", "text"):
        result = maps.scan(root, mode=mode)
        assert result.counts == {10: 0, 11: 2, 12: 3}
        assert list(result.failed) == [14]
        assert result.failed[14].errno == errno.EISDIR
        assert result.failed[14].filename == os.path.join(root, "14", "maps")
    assert maps.count(11, proc_root=root) == 2


def test_maps_that_are_not_a_regular_file_are_refused_unopened_or_unread(tmp_path):
    # The kernel's maps are regular files; in a crafted tree a FIFO would make open() wait for a
    # writer and a device (/dev/zero) give text forever. In a child: a hang fails the test.
    root = crafted_root(tmp_path, {40: ANON, 41: None, 42: None})
    os.mkfifo(tmp_path / "41" / "maps")
    os.symlink("/dev/zero", tmp_path / "42" / "maps")
    counted = ("import json, sys\nfrom guard import maps\nroot = sys.argv[1]\n"
               "out = {mode: [maps.scan(root, mode=mode), []] for mode in ('auto', 'text')}\n"
               "for mode in out:\n"
               "    for pid in (41, 42):\n"
               "        try:\n"
               "            maps.count(pid, proc_root=root, mode=mode)\n"
               "        except OSError as e:\n"
               "            out[mode][1].append([e.strerror, e.filename])\n"
               "print(json.dumps({mode: [scan.counts, {p: [e.strerror, e.filename] for p, e in scan.failed.items()},"
               " single] for mode, (scan, single) in out.items()}))\n")
    done = subprocess.run([sys.executable, "-c", counted, str(root)], capture_output=True, text=True,
                          timeout=10, cwd="/")
    assert done.returncode == 0, done.stderr
    refused = [["not a regular file", f"{root}/{pid}/maps"] for pid in (41, 42)]
    for mode, (counts, failed, single) in json.loads(done.stdout).items():
        assert counts == {"40": 1}, mode
        assert failed == {"41": refused[0], "42": refused[1]}, mode
        assert single == refused, mode


def test_text_split_anywhere_counts_lines_less_the_gate(tmp_path):
    # Longer than the first (probe) read and the text buffer, with lines cut at every boundary.
    text = (FILE * 150 + ANON * 400) * 3 + GATE
    root = crafted_root(tmp_path, {20: text, 21: text[:-1], 22: FILE * 700})
    # 21: the gate line lost its newline, so it is not a complete line (the kernel ends each).
    assert maps.scan(root).counts == {20: 1650, 21: 1650, 22: 700}


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.sampled_from([ANON, FILE, "x" * 4200 + "\n", "\n"]), max_size=300),
       gate=st.booleans())
def test_text_path_counts_newlines_less_a_final_gate(tmp_path_factory, lines, gate):
    text = "".join(lines) + (GATE if gate else "")
    root = tmp_path_factory.mktemp("proc")
    (root / "30").mkdir()
    (root / "30" / "maps").write_text(text)
    assert maps.count(30, proc_root=str(root)) == len(lines)
    assert maps.count(30, proc_root=str(root), mode="text") == len(lines)


def test_threads_count_what_one_thread_counts(tmp_path):
    root = crafted_root(tmp_path, {pid: ANON * (pid % 7) + GATE * (pid % 2) for pid in range(100, 600)})
    one = maps.scan(root, threads=1)
    assert maps.scan(root, threads=2) == one
    assert one.counts == {pid: pid % 7 for pid in range(100, 600)}


def test_scan_grows_its_buffer_when_there_are_more_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(maps, "_capacity", 8)
    root = crafted_root(tmp_path, {pid: ANON for pid in range(1, 101)})
    assert maps.scan(root).counts == {pid: 1 for pid in range(1, 101)}
    assert maps._capacity >= 100


def test_whole_system_scan_agrees_with_single_counts():
    result = maps.scan()
    assert os.getpid() in result.counts
    assert result.counts[os.getpid()] == maps.count(os.getpid())
    for pid, error in result.failed.items():
        assert isinstance(error, PermissionError), (pid, error)


def test_processes_exiting_during_a_scan_are_skipped_not_errors():
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            subprocess.run(["true"])

    workers = [threading.Thread(target=churn) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(30):
            result = maps.scan()
            assert all(n >= 0 for n in result.counts.values())
            assert all(isinstance(e, PermissionError) for e in result.failed.values()), result.failed
    finally:
        stop.set()
        for w in workers:
            w.join()


@pytest.fixture
def world_readable_dir():
    """A directory another user can enter (pytest's tmp_path is root's alone)."""
    path = tempfile.mkdtemp(prefix="guard-maps-")
    os.chmod(path, 0o755)
    try:
        yield pathlib.Path(path)
    finally:
        shutil.rmtree(path)


def test_permission_denied_is_reported_per_pid(world_readable_dir):
    """As another user: root's processes and unreadable files are failures of their own pid."""
    root = crafted_root(world_readable_dir, {40: ANON, 41: ANON})
    os.chmod(world_readable_dir / "41" / "maps", 0)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the module is loaded already: the child needs no files to run it
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            crafted = maps.scan(root)
            real = maps.scan()
            report = {
                "crafted": [crafted.counts, {p: e.errno for p, e in crafted.failed.items()}],
                "denied": sorted(p for p, e in real.failed.items() if e.errno == errno.EACCES),
                "counted": len(real.counts),
            }
            os.write(write, json.dumps(report).encode())
        except BaseException as e:
            os.write(write, json.dumps({"error": repr(e)}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        report = json.loads(f.read() or "null")
    os.waitpid(child, 0)
    assert "error" not in report, report
    assert report["crafted"] == [{"40": 1}, {"41": errno.EACCES}]
    assert os.getpid() in report["denied"]  # this test runs as root
    assert report["counted"] >= 1  # the child itself
