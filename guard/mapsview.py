"""`guard maps`: memory mappings per process against vm.max_map_count, as text, JSON or Prometheus.

Counting is guard.maps (the C scanner); this module adds the names, the percentages, the order
and the three renderings. ``render_prometheus`` is shared with supervise mode. With --output the
view replaces a file whole, and with --every it does so again and again: a node agent for
node_exporter's textfile collector (deploy/kubernetes/audit).
"""

import itertools
import json
import os
from typing import NamedTuple, Optional

from guard import host, maps, report
from guard.report import PREFIX

LIMIT_SYSCTL = "vm.max_map_count"
PID_MAX_LIMIT = 1 << 22  # include/linux/threads.h: no pid is larger on any Linux


class Row(NamedTuple):
    """One process: its map count, or None and the OSError that kept it from being counted."""

    pid: int
    name: str
    maps: Optional[int]
    error: Optional[OSError] = None


def read_limit():
    """vm.max_map_count as an int, or None when it cannot be read."""
    try:
        return int(host.read_sysctl(LIMIT_SYSCTL))
    except (host.Unreadable, ValueError):
        return None


def read_name(pid):
    """The process's command name (/proc/PID/comm); "?" when it cannot be read, None once the
    process has exited (its /proc directory is gone)."""
    directory = os.path.join(host.proc_root(), str(pid))
    try:
        return host.read_text(os.path.join(directory, "comm"))
    except host.Unreadable:
        return None if not os.path.isdir(directory) else "?"


def percent(count, limit):
    """count as a percentage of limit, None without a limit."""
    return 100.0 * count / limit if limit else None


def largest_first(counts, failed, top=None):
    """Rows by map count, largest first (then by pid); ``top`` keeps the largest N only.

    Processes that could not be counted follow, unless ``top`` asks for the largest. The race:
    a process counted by the scan can exit before its name is read; it has no mappings left and
    is left out, as the scan leaves out one that exits before its maps are read.
    """
    order = sorted(counts, key=lambda pid: (-counts[pid], pid))
    rows = (Row(pid, read_name(pid), counts[pid]) for pid in order)
    if top is None:
        rows = itertools.chain(rows, (Row(pid, read_name(pid), None, error)
                                      for pid, error in sorted(failed.items())))
    return list(itertools.islice((row for row in rows if row.name is not None), top))


def _reason(error):
    return (error.strerror or str(error)).lower()


def render_text(rows, limit):
    """A table: pid, maps, % of the limit, name; the limit in the header."""
    shown = f"[{limit}]" if limit else "[unknown]"
    lines = [f"{LIMIT_SYSCTL} {shown}", f"{'PID':>8} {'MAPS':>9} {'% LIMIT':>8}  NAME"]
    for row in rows:
        share = percent(row.maps, limit) if row.maps is not None else None
        maps_text = "-" if row.maps is None else str(row.maps)
        share_text = "-" if share is None else f"{share:.1f}%"
        note = f" ({_reason(row.error)})" if row.error else ""
        lines.append(f"{row.pid:>8} {maps_text:>9} {share_text:>8}  {row.name}{note}")
    return "\n".join(lines) + "\n"


def render_json(rows, limit):
    """{"max_map_count": N, "processes": [{"pid", "name", "maps", "percent", "error"}...]}."""
    processes = []
    for row in rows:
        share = percent(row.maps, limit) if row.maps is not None else None
        processes.append({
            "pid": row.pid,
            "name": row.name,
            "maps": row.maps,
            "percent": None if share is None else round(share, 2),
            "error": _reason(row.error) if row.error else None,
        })
    return json.dumps({"max_map_count": limit, "processes": processes}, indent=2) + "\n"


def _label(value):
    """A Prometheus label value: backslash, double quote and newline escaped (exposition format)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(rows, limit):
    """Prometheus text exposition for node_exporter's textfile collector.

    rows: Row records (or any (pid, name, maps, ...) tuples); those without a count are left
    out. limit: vm.max_map_count, or None to leave its gauge out.
    """
    lines = ["# HELP guard_process_map_count Memory mappings (VMAs) of a process, which the "
             "kernel compares with vm.max_map_count.",
             "# TYPE guard_process_map_count gauge"]
    for pid, name, count, *_ in rows:
        if count is not None:
            lines.append(f'guard_process_map_count{{pid="{pid}",comm="{_label(name)}"}} {count}')
    if limit is not None:
        lines += ["# HELP guard_vm_max_map_count The kernel's limit on memory mappings per "
                  "process (vm.max_map_count).",
                  "# TYPE guard_vm_max_map_count gauge",
                  f"guard_vm_max_map_count {limit}"]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "prometheus": render_prometheus}


def _rows_for_pids(pids, top):
    """Rows for the pids typed (each once); exit code 1 when one is missing or unreadable."""
    counts, failed, code = {}, {}, 0
    for pid in dict.fromkeys(int(p) for p in pids):
        try:
            counts[pid] = maps.count(pid)
        except ProcessLookupError:
            report.write(f"{PREFIX}no process with pid [{pid}]\n")
            code = 1
        except OSError as e:
            report.write(f"{PREFIX}cannot count the memory maps of pid [{pid}]: {_reason(e)}\n")
            failed[pid], code = e, 1
    return largest_first(counts, failed, top), code


def _scan_failure(error):
    return f"cannot list processes in {error.filename}: {error.strerror}"


def run(pids, top, fmt, output=None):
    """`guard maps [PID...] [--top N] [--format text|json|prometheus] [--output PATH]`: write to
    stdout, or replace PATH; return the exit code (0; 1 when a pid given does not exist or cannot
    be read; 2 for a bad pid; 74 when the view could not be written)."""
    for pid in pids:
        if not (pid.isascii() and pid.isdigit()) or not 0 < int(pid) <= PID_MAX_LIMIT:
            report.write(f"{PREFIX}PID must be a process id but was [{pid}]\n")
            return 2
    if pids:
        rows, code = _rows_for_pids(pids, top)
    else:
        try:
            scan = maps.scan()
        except OSError as e:
            report.write(f"{PREFIX}{_scan_failure(e)}\n")
            return 1
        rows, code = largest_first(scan.counts, scan.failed, top), 0
    if pids and not rows and fmt == "text" and output is None:
        return code  # every pid given was missing, and said so: a table with no row says nothing more
    text = RENDERERS[fmt](rows, read_limit())
    if output is None:
        written = report.output(text)
    else:
        try:
            host.replace_file(output, text)
            written = True
        except host.Unwritable as e:
            report.write(f"{PREFIX}{e}\n")
            written = False
    return code if written else code or report.EXIT_OUTPUT


class Audit:
    """`guard maps --output PATH --every SECONDS`: the whole system's view, PATH replaced whole
    at every pass; what goes wrong is said once, and the next pass tries again."""

    def __init__(self, output, top, fmt):
        self.output, self.top, self.fmt = output, top, fmt
        self.complaints = set()

    def complain(self, message):
        if message not in self.complaints:
            self.complaints.add(message)
            report.write(f"{PREFIX}{message}\n")

    def write_once(self):
        try:
            scan = maps.scan()
        except OSError as e:
            self.complain(_scan_failure(e))
            return
        text = RENDERERS[self.fmt](largest_first(scan.counts, scan.failed, self.top), read_limit())
        try:
            host.replace_file(self.output, text)
        except host.Unwritable as e:
            self.complain(str(e))

    def keep_written(self, every, cpu_share):
        """Pass after pass until SIGTERM or SIGINT (then 0), within cpu_share of one core as the
        watch's samples are: a scan of a node with a large process costs the kernel tens of ms."""
        from guard import supervise  # it imports this module: here, not at the top

        return supervise.every(every, self.write_once, cpu_share)
