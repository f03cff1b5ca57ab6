"""`guard maps`: the table, JSON and Prometheus views of map counts, and its exit codes."""

import json
import os
import subprocess

import pytest

from guard import maps, mapsview

LINE = "7f0000000000-7f0000001000 r--p 00000000 00:00 0 \n"
GATE = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"


@pytest.fixture
def proc(tmp_path, monkeypatch):
    """A crafted proc root: three processes, one unreadable, and vm.max_map_count 1000."""
    for pid, name, lines in ((10, "redis-server", 250), (11, 'odd"na\\me', 3), (12, "java", 900)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "maps").write_text(LINE * lines + GATE)
        (tmp_path / str(pid) / "comm").write_text(name + "\n")
    (tmp_path / "13").mkdir()
    (tmp_path / "13" / "maps").mkdir()  # read() fails: EISDIR
    (tmp_path / "13" / "comm").write_text("secret\n")
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    (tmp_path / "sys" / "vm" / "max_map_count").write_text("1000\n")
    monkeypatch.setenv("GUARD_PROCFS", str(tmp_path))
    return tmp_path


def test_table_is_largest_first_with_the_limit_in_the_header(proc, capsys):
    assert mapsview.run([], None, "text") == 0
    assert capsys.readouterr().out == (
        "vm.max_map_count [1000]\n"
        "     PID      MAPS  % LIMIT  NAME\n"
        "      12       900    90.0%  java\n"
        "      10       250    25.0%  redis-server\n"
        '      11         3     0.3%  odd"na\\me\n'
        "      13         -        -  secret (is a directory)\n"
    )


def test_top_keeps_the_largest(proc, capsys):
    assert mapsview.run([], 2, "text") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == ["12", "10"]


def test_json_for_scripts(proc, capsys):
    assert mapsview.run(["11", "10", "11"], None, "json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "max_map_count": 1000,
        "processes": [
            {"pid": 10, "name": "redis-server", "maps": 250, "percent": 25.0, "error": None},
            {"pid": 11, "name": 'odd"na\\me', "maps": 3, "percent": 0.3, "error": None},
        ],
    }


def test_prometheus_exposition_escapes_labels(proc, capsys):
    assert mapsview.run([], 2, "prometheus") == 0
    assert capsys.readouterr().out == (
        "# HELP guard_process_map_count Memory mappings (VMAs) of a process, which the kernel "
        "compares with vm.max_map_count.\n"
        "# TYPE guard_process_map_count gauge\n"
        'guard_process_map_count{pid="12",comm="java"} 900\n'
        'guard_process_map_count{pid="10",comm="redis-server"} 250\n'
        "# HELP guard_vm_max_map_count The kernel's limit on memory mappings per process "
        "(vm.max_map_count).\n"
        "# TYPE guard_vm_max_map_count gauge\n"
        "guard_vm_max_map_count 1000\n"
    )
    rows = [mapsview.Row(1, 'a"b\nc', 5), mapsview.Row(2, "x", None, OSError(13, "Permission denied"))]
    assert mapsview.render_prometheus(rows, None).splitlines()[2:] == [
        'guard_process_map_count{pid="1",comm="a\\"b\\nc"} 5']


def test_pid_that_does_not_exist_exits_1_with_a_message(proc, capsys):
    assert mapsview.run(["10", "99"], None, "text") == 1
    captured = capsys.readouterr()
    assert captured.err == "guard: no process with pid [99]\n"
    assert "redis-server" in captured.out


def test_pid_that_cannot_be_read_exits_1_and_says_why(proc, capsys):
    assert mapsview.run(["13"], None, "text") == 1
    captured = capsys.readouterr()
    assert captured.err == "guard: cannot count the memory maps of pid [13]: is a directory\n"
    assert captured.out.splitlines()[-1] == "      13         -        -  secret (is a directory)"


@pytest.mark.parametrize("typed", ["abc", "-5", "0", "１２", "4194305", "99999999999"])
def test_pid_that_is_not_a_process_id_is_a_usage_error(typed, capsys):
    assert mapsview.run([typed], None, "text") == 2
    assert capsys.readouterr().err == f"guard: PID must be a process id but was [{typed}]\n"


def test_unreadable_limit_shows_as_unknown(proc, capsys):
    os.unlink(proc / "sys" / "vm" / "max_map_count")
    assert mapsview.run(["10"], None, "text") == 0
    assert capsys.readouterr().out.splitlines()[::2] == [
        "vm.max_map_count [unknown]", "      10       250        -  redis-server"]


def test_this_process_on_the_real_proc(capsys):
    assert mapsview.run([str(os.getpid())], None, "json") == 0
    (row,) = json.loads(capsys.readouterr().out)["processes"]
    assert row["pid"] == os.getpid() and row["maps"] > 10 and row["error"] is None


def test_process_counted_then_gone_before_its_name_is_read_is_left_out():
    # the race of a whole-system scan: counted, then exited before /proc/PID/comm was read
    proc = subprocess.Popen(["sleep", "30"])
    try:
        counts = {proc.pid: maps.count(proc.pid) + 10**6, os.getpid(): maps.count(os.getpid())}
    finally:
        proc.kill()
        proc.wait()
    assert [row.pid for row in mapsview.largest_first(counts, {})] == [os.getpid()]
    assert [row.pid for row in mapsview.largest_first(counts, {}, top=1)] == [os.getpid()]


def test_unreadable_name_of_a_live_process_is_a_question_mark(proc, capsys):
    os.unlink(proc / "10" / "comm")
    assert mapsview.run(["10"], None, "text") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "      10       250    25.0%  ?"
