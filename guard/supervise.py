"""Supervise mode: guard stays as PID 1, runs the program as its child and watches its maps.

Init duties follow tini's semantics (krallin/tini, src/tini.c): every catchable signal is
blocked in guard and taken synchronously with sigtimedwait(), so signal handling and the map
sampling share one loop with no handler racing between bytecodes; each signal but SIGCHLD is
forwarded to the child's pid; SIGCHLD reaps every zombie; guard returns the child's exit code,
or 128 + the signal that killed it. Like tini, the child gets a process group of its own and,
when guard owns the terminal, the foreground, so Ctrl-C reaches it once and not twice.

While the child lives guard does not exit: a sample, a metrics file or a line that fails is
said once if it can be, and supervision goes on. Guard exiting early would orphan the program,
and as a container's PID 1 end the container with it.

The watch samples the memory maps (VMAs) of every process below guard and warns when the largest
crosses 80, 90 and 95 % of vm.max_map_count: Elasticsearch and Kafka mmap a file per segment
and fail hours after starting with "Map failed" when the count reaches the limit.
"""

import contextlib
import errno
import os
import signal
import time

from guard import host, launch, maps, mapsview, place, report

# Not forwarded, as in tini's configure_signals(): SIGCHLD is guard's own business; the
# synchronous ones are the kernel reporting a fault in guard itself; SIGTTIN/SIGTTOU are ignored
# so that guard, once the child owns the terminal, can still write its warnings to it.
SYNCHRONOUS = {signal.SIGFPE, signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT,
               signal.SIGTRAP, signal.SIGSYS}
TERMINAL = {signal.SIGTTIN, signal.SIGTTOU}
UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}
FORWARDED = frozenset(signal.valid_signals() - SYNCHRONOUS - TERMINAL - UNCATCHABLE - {signal.SIGCHLD})
WAITED = FORWARDED | {signal.SIGCHLD}

# EX_OSERR (sysexits.h), whose meaning is "cannot fork": the child could not be started.
FORK_FAILED = 71

# include/uapi/linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36

# The watch takes at most this share of one core by default (--watch-cpu): when a sample costs more
# CPU than that share of --interval (the kernel renders /proc/PID/maps at 0.1-0.6 us a line: 60k maps take 11-35 ms,
# 250k maps 50-150 ms), the next sample waits longer. A watchdog must not become the load, and
# maps pile up over hours, so a sample every few seconds instead of every second misses nothing.
CPU_SHARE = 0.015

# Warning levels in percent of vm.max_map_count, and how far below a level the count must fall
# before that level is re-armed: a count hovering around 80 % then gives one line, not one per
# sample.
LEVELS = (80, 90, 95)
HYSTERESIS = 5

# Elasticsearch's MaxMapCountCheck requires 1 << 18; Kafka's and Confluent's docs use the same
# figure. A limit already at or above it is doubled.
RECOMMENDED_MAX_MAP_COUNT = 1 << 18

# The longest single wait for a signal: however far off the next sample (a tiny --watch-cpu
# spaces samples out without bound), sigtimedwait() is never asked for more than time_t holds.
LONGEST_WAIT = 3600.0


def say(message):
    """One line on stderr, if it can be written: guard's own output never stops supervision."""
    report.write(f"{report.PREFIX}{message}\n")


def run(argv, interval, metrics_file=None, where=None, cpu_share=None):
    """Start argv as a child, forward signals, reap zombies, watch maps; return guard's exit code.

    Call it once, as guard's last act: the forwarded signals stay blocked on return, as tini never
    unblocks them, so one that comes after the child's end (a second docker stop, Ctrl-C) cannot
    end guard with another code than the child's, or make Python raise KeyboardInterrupt.
    """
    # What whoever started guard ignored (nohup, trap '' HUP) stays ignored in the child: tini
    # puts back only what it changed itself (restore_signals(): the mask, SIGTTIN, SIGTTOU), and
    # exec keeps an ignored signal ignored. Guard still forwards such a signal (blocked, it is
    # queued, not discarded), and the child ignores it, as under tini.
    inherited_ignores = {signum for signum in signal.valid_signals() - UNCATCHABLE
                         if signal.getsignal(signum) == signal.SIG_IGN} - set(launch.PYTHON_IGNORES)
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    for signum in TERMINAL:
        signal.signal(signum, signal.SIG_IGN)
    # An ignored SIGCHLD makes the kernel reap children itself (POSIX wait(): no zombie, ECHILD),
    # and the child's exit code would be lost with guard waiting for it forever.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _become_subreaper()
    try:
        child = _spawn(argv, saved_mask, inherited_ignores, _owns_terminal())
    except OSError as e:  # nothing was started: guard ends, as tini does, with the reason
        more = " (the process limit of the user, nproc, or of the container, pids.max, is reached)" \
            if e.errno == errno.EAGAIN else ""
        say(f"cannot start {argv[0]}: fork failed: {e.strerror}{more}")
        return FORK_FAILED
    return _supervise(child, interval, MapWatch(metrics_file, where=where), cpu_share or CPU_SHARE)


def _become_subreaper():
    """Orphans below guard are re-parented to guard, not to the real init, so guard reaps them.

    Python's os module has no prctl(); one call at start does not justify C in the scanner's core,
    so it goes through libc with ctypes, imported only when guard is not PID 1.
    """
    if os.getpid() == 1:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        reason = os.strerror(ctypes.get_errno())
        say(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {reason}; orphaned processes are reaped by "
            "PID 1, not by guard")


def _owns_terminal():
    """Hand the terminal to the child only if guard holds it, so `guard --watch ... &` in a
    shell does not steal the foreground from the shell."""
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _spawn(argv, saved_mask, inherited_ignores, foreground):
    """fork + exec as tini's spawn() does; exec failures exit the child with 127 or 126."""
    envp = launch.original_environ()
    pid = os.fork()
    if pid:
        return pid
    try:
        # tini's isolate_child(): a process group of its own, the terminal's foreground when
        # guard had it. SIGTTOU is still ignored here, which tcsetpgrp() from a background
        # group needs.
        os.setpgid(0, 0)
        if foreground:
            with contextlib.suppress(OSError):  # no terminal after all: nothing to hand over
                os.tcsetpgrp(0, os.getpgrp())
        # Dispositions as guard was started with (Python ignores SIGPIPE and SIGXFSZ and
        # handles SIGINT, guard ignores SIGTTIN/SIGTTOU), then the mask guard was started with:
        # the program starts as it would have after a plain exec.
        for signum in signal.valid_signals() - UNCATCHABLE - inherited_ignores:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        launch.execvpe(argv[0], argv, envp)
    except (OSError, ValueError) as e:
        code, message = launch.exec_failure(argv[0], e, envp)
        report.write(message + "\n")
        os._exit(code)
    finally:
        os._exit(launch.NOT_EXECUTABLE)


def _supervise(child, interval, watch, cpu_share=CPU_SHARE):
    """One loop for signals, zombies and samples: sigtimedwait() sleeps until the next sample.

    Only reaping decides when it ends. SIGINT is blocked like every forwarded signal, so Python's
    handler never runs here; should a KeyboardInterrupt come all the same, it is the child's
    Ctrl-C, not guard's, and is forwarded as one.

    A signal that guard's own write raised carries guard's pid (the kernel's send_sig() from
    the current task): SIGPIPE for a stderr nobody reads, SIGXFSZ past the file size limit.
    Python ignores both, but blocked they are queued all the same; they are guard's, and
    forwarded they would kill the child.
    """
    next_sample = time.monotonic()
    while True:
        code = reap(child)
        if code is not None:
            return code
        try:
            now = time.monotonic()
            if now >= next_sample:
                spent = time.process_time()
                watch.sample_safely()
                next_sample = next_due(next_sample, now, interval, time.process_time() - spent, cpu_share)
                continue
            info = signal.sigtimedwait(WAITED, min(next_sample - now, LONGEST_WAIT))
            if info is not None and info.si_signo != signal.SIGCHLD and info.si_pid != os.getpid():
                forward(child, info.si_signo, watch)
        except KeyboardInterrupt:
            forward(child, signal.SIGINT, watch)


def next_due(due, started, interval, spent, cpu_share):
    """When the next sample is due: interval after this one was due, or later, so that samples
    costing ``spent`` seconds of CPU each (this one, begun at ``started``) take at most cpu_share
    of one core."""
    return max(due + interval, started + spent / cpu_share)


# What ends a loop of every(): docker stop and Kubernetes send SIGTERM, a terminal SIGINT.
STOPPING = frozenset({signal.SIGTERM, signal.SIGINT})


def every(interval, action, cpu_share=None):
    """Call action now and every interval seconds until SIGTERM or SIGINT comes; then return 0.

    For a node agent (guard fix --every, guard maps --every): the stop signals are blocked and
    taken with sigtimedwait(), as in the watch's loop, so one that comes during action() ends the
    loop after it, never in the middle of a file being replaced. With cpu_share, costly actions
    are spaced out as the watch's samples are (next_due).
    """
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        due = time.monotonic()
        while True:
            now = time.monotonic()
            if signal.sigtimedwait(STOPPING, min(max(due - now, 0), LONGEST_WAIT)) is not None:
                return 0
            now = time.monotonic()
            if now < due:
                continue
            spent = time.process_time()
            action()
            spent = time.process_time() - spent
            due = next_due(due, now, interval, spent, cpu_share) if cpu_share else max(due + interval, now)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)


def reap(child):
    """Reap every zombie below guard; the child's exit code once it is among them, else None."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == child:
            code = exit_code(status)


def exit_code(status):
    """The shell's convention: the exit status, or 128 + the number of the killing signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def forward(child, signum, watch):
    try:
        os.kill(child, signum)
    except ProcessLookupError:
        pass  # the child exited and was reaped since; its code is returned next
    except OSError as e:  # EPERM: the child became another user's (a setuid program)
        watch.complain(f"cannot forward {signal_name(signum)} to pid [{child}]: {e.strerror}")


def signal_name(signum):
    """SIGTERM; SIGRTMIN+N as kill -l says, for the real-time signals that signal.Signals lacks
    (it names only SIGRTMIN and SIGRTMAX): a ValueError here would end guard and orphan the child."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


def descendants(pid):
    """Pids below pid, from /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN), each once.

    A process that exits while the tree is walked is skipped: its children file is gone. A pid
    already seen is not walked again (a pid reused mid-walk, a crafted tree), so the walk ends.
    """
    found, seen, todo = [], {pid}, [pid]
    while todo:
        children = [child for child in _children(todo.pop()) if child not in seen]
        seen.update(children)
        found += children
        todo += children
    return found


def _children(pid):
    task = os.path.join(host.proc_root(), str(pid), "task")
    pids = []
    try:
        tids = os.listdir(task)
    except OSError:
        return pids  # gone
    for tid in tids:
        try:
            # Only a regular file is read, as the kernel's is: in a crafted tree (GUARD_PROCFS) a
            # FIFO would hold the sample, and with it the reaping, until a writer came.
            words = host.read_bytes(os.path.join(task, tid, "children")).split()
        except host.Unreadable:
            continue  # the thread exited, or it is no children file
        # The kernel writes decimal pids; any other word names no process guard could count.
        pids += [int(w) for w in words if w.isdigit() and 0 < int(w) <= mapsview.PID_MAX_LIMIT]
    return pids


def level_of(percent, level):
    """The warning level after a sample at percent, given the level before it.

    Up: the highest level reached. Down: a level is left only when the count falls HYSTERESIS
    points below it, so a count hovering at a level does not warn at every sample.
    """
    reached = max((lv for lv in LEVELS if percent >= lv), default=0)
    if reached > level:
        return reached
    while level and percent < level - HYSTERESIS:
        lower = [lv for lv in LEVELS if lv < level]
        level = lower[-1] if lower else 0
    return level


def recommended(limit):
    return max(RECOMMENDED_MAX_MAP_COUNT, 2 * limit)


class MapWatch:
    """Samples the maps below guard and says when the largest crosses a level or falls back."""

    def __init__(self, metrics_file=None, root=None, where=None):
        self.metrics_file = metrics_file
        self.root = root or os.getpid()
        self.level = 0
        self.complaints = set()  # problems already reported, each said once
        self.where = place.Detected() if where is None else where  # detected on first need when not given
        self.samples = 0

    def sample_safely(self):
        """sample(), and whatever goes wrong in it said once: the next sample may do better, and
        the child is supervised either way."""
        try:
            self.sample()
        except Exception as e:  # a watchdog's fault must not end the init's duties
            self.complain(f"a sample of the memory maps failed: {type(e).__name__}: {e}; "
                          "supervision goes on")

    def sample(self):
        self.samples += 1
        limit = mapsview.read_limit()
        if not limit:
            self.complain(f"cannot watch memory maps: cannot read {host.sysctl_path(mapsview.LIMIT_SYSCTL)}")
            return
        rows = []
        for pid in descendants(self.root):
            try:
                count = maps.count(pid)
            except ProcessLookupError:
                continue  # exited since it was listed
            except OSError as e:
                self.complain(f"cannot count the memory maps of pid [{pid}]: {e.strerror}")
                continue
            name = mapsview.read_name(pid)
            if name is not None:  # None: exited since it was counted
                rows.append(mapsview.Row(pid, name, count))
        if rows:
            top = max(rows, key=lambda row: row.maps)
            self.observe(top.pid, top.name, top.maps, limit)
        if self.metrics_file:
            self.write_metrics(rows, limit)

    def observe(self, pid, comm, count, limit):
        """Say a line when the level changes upward or falls back to 0."""
        percent = count * 100 // limit if limit > 0 else 0
        level = level_of(percent, self.level)
        what = f"pid [{pid}] ({comm}) has [{count}] memory maps"
        if level > self.level:
            say(f"{what}, more than {level}% of vm.max_map_count [{limit}]; to fix this, raise "
                f"vm.max_map_count on {self.kernel_place()}: sysctl -w vm.max_map_count={recommended(limit)}")
        elif level == 0 and self.level:
            say(f"{what}, back below {LEVELS[0] - HYSTERESIS}% of vm.max_map_count [{limit}]")
        self.level = level

    def kernel_place(self):
        return self.where.where_the_kernel_is

    def complain(self, message):
        if message not in self.complaints:
            self.complaints.add(message)
            say(message)

    def write_metrics(self, rows, limit):
        """Replace the file whole: node_exporter's textfile collector may read it any time."""
        text = mapsview.render_prometheus(rows, limit) + (
            "# HELP guard_watch_samples_total Samples of the memory maps taken by guard --watch.\n"
            "# TYPE guard_watch_samples_total counter\n"
            f"guard_watch_samples_total {self.samples}\n")
        try:
            host.replace_file(self.metrics_file, text)
        except host.Unwritable as e:
            self.complain(f"{'not writing' if e.unfit else 'cannot write'} metrics to {self.metrics_file}: {e.why}")
