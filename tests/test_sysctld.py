"""guard.sysctld: a sysctl.d line read as procps and the kernel read it, and the boot's order of files.

The kernel itself is the oracle for values: each one is written, as `sysctl -p` writes it, to
net.core.somaxconn in a network namespace of the test's own (unshare -n), never the host's.
"""

import os
import shutil
import subprocess

import pytest

from guard import sysctld
from guard.checks import INT_MAX
from support import crafted_files

UNSHARE = shutil.which("unshare")
SYSCTL = shutil.which("sysctl")

# What a value may look like after "key =": a comment after it, another base, a sign, junk.
VALUES = ["1048576 # keep high", "8192\t; tab then comment", "0x3000", "010", "0", "9000#x", "-1", "+5", "5 6",
          "08", "0x", "", "  65536 ", "2147483647", "2147483648", "0x7fffffff", "1e3", "12abc", "7\r"]


@pytest.mark.skipif(not (os.geteuid() == 0 and UNSHARE and SYSCTL), reason="needs root, unshare(1) and sysctl(8)")
@pytest.mark.parametrize("value", VALUES)
def test_a_value_sets_what_the_kernel_takes_from_it_through_sysctl_p(tmp_path, value):
    conf = tmp_path / "x.conf"
    conf.write_text(f"net.core.somaxconn = {value}\n")
    script = 'before=$(cat /proc/sys/net/core/somaxconn); sysctl -q -p "$1" >/dev/null 2>&1; ' \
             'echo "$before $(cat /proc/sys/net/core/somaxconn)"'
    done = subprocess.run([UNSHARE, "--net", "sh", "-c", script, "sh", str(conf)], capture_output=True, text=True,
                          timeout=30)
    before, after = map(int, done.stdout.split())
    [line] = filter(None, map(sysctld.setting, conf.read_text().split("\n")))
    # somaxconn is an int from 0: a number outside is refused by its range, not by the parsing
    taken = line.number if line.number is not None and 0 <= line.number <= INT_MAX else None
    assert taken == (after if after != before else None), done.stderr


@pytest.mark.parametrize("line, key, value, number, span", [
    ("vm.max_map_count = 1048576 # keep high\n", "vm.max_map_count", "1048576 # keep high", 1048576, "1048576"),
    ("-vm/max_map_count=0x100000\r\n", "vm.max_map_count", "0x100000", 1048576, "0x100000"),
    ("  net.ipv4.conf.eth0/100.forwarding = 1", "net.ipv4.conf.eth0/100.forwarding", "1", 1, "1"),
    ("vm.max_map_count = 1048576#x", "vm.max_map_count", "1048576#x", None, "1048576#x"),
    ("net.ipv4.tcp_congestion_control = bbr", "net.ipv4.tcp_congestion_control", "bbr", None, "bbr"),
])
def test_a_line_is_read_as_procps_reads_it(line, key, value, number, span):
    found = sysctld.setting(line)
    assert (found.key, found.value, found.number) == (key, value, number)
    assert line[found.start:found.end] == span  # the number, to replace it alone (the value when none)


@pytest.mark.parametrize("line", ["# vm.max_map_count = 1", "  ; vm.max_map_count = 1", "vm.max_map_count", "", "\n",
                                  "vm.* = 1", "-net.ipv4.conf.*.rp_filter"])
def test_comments_blanks_and_globs_set_no_key_of_their_own(line):
    assert sysctld.setting(line) is None


def test_boot_order_is_by_name_across_folders_an_earlier_folder_masking_a_name_and_sysctl_conf_last(tmp_path):
    root = str(tmp_path)
    crafted_files(root, {"etc/sysctl.conf": "vm.max_map_count = 1\n",
                         "usr/lib/sysctl.d/50-default.conf": "vm.max_map_count = 2\n",
                         "usr/lib/sysctl.d/zzz-late.conf": "vm.max_map_count = 3\n",
                         "run/sysctl.d/99-zzz-override.conf": "vm.max_map_count = 4\n",
                         "usr/lib/sysctl.d/60-masked.conf": "vm.max_map_count = 5\n",
                         "etc/sysctl.d/not-a-conf.txt": "vm.max_map_count = 6\n"})
    os.symlink("../sysctl.conf", f"{root}/etc/sysctl.d/99-sysctl.conf")  # as Debian and Ubuntu ship it
    os.symlink(os.devnull, f"{root}/etc/sysctl.d/60-masked.conf")  # systemd's way to mask a vendor file
    before, after = sysctld.boot_order(f"{root}/etc/sysctl.d", "zz-guard.conf", root)
    assert [(os.path.relpath(s.path, root), [x.number for x in s.settings], s.trouble) for s in before] == [
        ("usr/lib/sysctl.d/50-default.conf", [2], None),
        ("etc/sysctl.d/60-masked.conf", [], None),
        ("etc/sysctl.d/99-sysctl.conf", [1], None),
        ("run/sysctl.d/99-zzz-override.conf", [4], None),
    ]
    assert [(os.path.relpath(s.path, root), [x.number for x in s.settings]) for s in after] == [
        ("usr/lib/sysctl.d/zzz-late.conf", [3]), ("etc/sysctl.conf", [1])]


def test_without_a_root_only_the_folder_written_is_read(tmp_path):
    crafted_files(tmp_path, {"d/10-a.conf": "vm.swappiness = 1\n"})
    before, after = sysctld.boot_order(f"{tmp_path}/d", "zz-guard.conf", None)
    assert [os.path.basename(s.path) for s in before] == ["10-a.conf"] and after == []


def test_lines_break_at_newlines_only_as_getline_reads_them():
    text = "# a form feed\x0c and a \u2028 stay in their line\r\nvm.max_map_count = 1\nlast"
    assert sysctld.lines_of(text) == ["# a form feed\x0c and a \u2028 stay in their line\r\n",
                                      "vm.max_map_count = 1\n", "last"]
    assert "".join(sysctld.lines_of(text)) == text and sysctld.newline_of(text) == "\r\n"
