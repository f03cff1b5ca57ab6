"""Rendering the results: one line per check, then one block with every failure and its fix;
and writing guard's own lines, which must never be what stops the program."""

import errno
import os
import select
import sys
import time

from guard.checks import format_value
from guard.host import UNLIMITED

PREFIX = "guard: "
STATUS_WORDS = {"pass": "pass", "warn": "warn", "fail": "FAIL", "skip": "skip"}

# The exit code when guard's own output (stdout: check's JSON, profiles, maps, --help) could not
# be written: EX_IOERR (sysexits.h).
EXIT_OUTPUT = 74

# How long guard's text may wait for room in a stderr nobody reads (a full pipe) before it is
# dropped: the program guard starts, and the signals guard forwards, wait for no reader.
STDERR_PATIENCE = 1.0


def _fix(req, place, profile):
    from guard import fixes  # here: a report with nothing to fix never loads the fixes' texts

    return fixes.fix(req, place, profile)


def _target(req):
    from guard import fixes

    return fixes.target(req)


def verdict(results, enforce):
    statuses = {r.status for r in results}
    if "fail" in statuses and enforce:
        return "refuse"
    if statuses & {"fail", "warn"}:
        return "warn"
    return "pass"


def problems(results):
    return [r for r in results if r.status in ("fail", "warn")]


def _json_value(value):
    return "unlimited" if value == UNLIMITED else value


def to_json(profile, mode, place, notes, results):
    import json  # only here: guard's start-up pays for what it uses

    checks = []
    for r in results:
        req = r.requirement
        checks.append({
            "name": req.name,
            "key": req.key,
            "status": r.status,
            "actual": _json_value(r.actual),
            "required": _json_value(req.value),
            "op": req.op,
            "hard": req.hard,
            "message": r.message,
            "fix": _fix(req, place, profile) if r.status in ("fail", "warn") else None,
            "source": req.source,
        })
    return json.dumps({
        "profile": profile,
        "mode": mode,
        "place": place.name,
        "verdict": verdict(results, mode == "enforce"),
        "notes": notes,
        "checks": checks,
    }, indent=2)


def to_text(profile, place, notes, results, quiet=False):
    lines = []
    if not quiet:
        lines += [f"{profile}: {note}" for note in notes]
        width = max((len(r.requirement.name) for r in results), default=0)
        lines += [f"{STATUS_WORDS[r.status]:<4}  {r.requirement.name:<{width}}  {r.message}" for r in results]
    bad = problems(results)
    if bad:
        lines.append(summary(bad, len(results), profile))
        fixed_by = {}  # (knob, value set) -> the number whose fix sets it: each command said once
        for number, r in enumerate(bad, 1):
            kind = "" if r.status == "fail" else " (warning)"
            lines.append(f"[{number}]{kind} {r.message}")
            change = (r.requirement.key, format_value(_target(r.requirement)))
            if change in fixed_by:
                lines.append(f"    The fix in [{fixed_by[change]}] covers this too: it sets [{change[1]}].")
                continue
            fixed_by[change] = number
            lines += ["    " + line for line in _fix(r.requirement, place, profile).splitlines()]
    return "".join(PREFIX + line + "\n" for line in lines)


def _subject(profile):
    return "the --require checks" if profile == "none" else profile


def passed(results, profile):
    """The one line that ends guard check's and guard fix's report when nothing fell short (a
    report of passes alone would end without saying so); empty when something did."""
    if problems(results):
        return ""
    whose = "" if profile == "none" else f" for {profile}"
    skipped = sum(1 for r in results if r.status == "skip")
    if skipped == len(results):
        return f"{PREFIX}no check{whose} could be run here: nothing was judged\n"
    also = f"; [{skipped}] skipped, as said above" if skipped else ""
    return f"{PREFIX}all [{len(results) - skipped}] checks passed{whose}{also}\n"


def summary(bad, total, profile):
    """The count line: failures when a hard check failed (Elasticsearch's "[2] of [5] checks
    failed"), warnings when only soft ones did: then nothing stops the program."""
    subject = _subject(profile)
    failed = sum(1 for r in bad if r.status == "fail")
    warned = len(bad) - failed
    if not failed:
        return f"[{warned}] of [{total}] checks gave a warning for {subject}; none of them stops it from starting"
    more = f", and [{warned}] gave a warning" if warned else ""
    return f"[{failed}] of [{total}] checks failed for {subject}{more}"


def closing_line(results, mode, program):
    """What guard does next, said once: refuse, start anyway, or nothing to say (program is None
    for guard check)."""
    outcome = verdict(results, mode == "enforce")
    if outcome == "refuse":
        start = f"refusing to start {program}" if program else "check failed"
        return (f"{PREFIX}{start} (exit 78): fix the failures above, or run with --mode warn "
                f"(GUARD_MODE=warn) to start anyway\n")
    if outcome == "warn" and program and mode == "warn":
        return f"{PREFIX}starting {program} anyway (warn mode)\n"
    return ""


def format_requirement(req):
    return f"{req.key} {req.op} {format_value(req.value)}"


def write(text, stream="stderr"):
    """Write text to guard's stderr (or stdout) now; None, or the OSError that stopped it.

    Python's sys.stderr keeps what it could not write and tries again at exit, where a closed
    (>&-), full (/dev/full) or broken (| head) stream would end guard with an error of its own:
    guard hands the bytes to the descriptor itself, once, and the caller decides what a failure
    means. A stream closed when guard started is None in Python; its descriptor number may since
    belong to a file guard opened, so nothing is written to it.
    """
    target = getattr(sys, stream)
    if target is None:
        return OSError(errno.EBADF, "closed when guard started")
    try:
        fd = target.fileno()
    except (AttributeError, OSError, ValueError):  # no descriptor: a StringIO put in its place
        try:
            target.write(text)
        except (OSError, ValueError) as e:
            return e
        return None
    data = memoryview(_encode(text, getattr(target, "encoding", None)))
    deadline = time.monotonic() + STDERR_PATIENCE if stream == "stderr" else None
    try:
        target.flush()  # anything Python holds goes first, in order
        while data:
            if not _room(fd, deadline):
                return OSError(errno.ETIMEDOUT, "nobody reads it")
            try:
                # A pipe poll() calls writable has a free page: PIPE_BUF bytes fit at once (pipe(7)),
                # where a longer write to a blocking pipe would wait for a reader that may never come.
                data = data[os.write(fd, data[:select.PIPE_BUF]):]
            except BlockingIOError:  # a non-blocking descriptor that filled up: wait for room
                pass
    except (OSError, ValueError) as e:
        return e
    return None


def _encode(text, encoding):
    """Bytes as the stream would write them; names that came in as undecodable bytes go out as
    the same bytes (surrogateescape)."""
    try:
        return text.encode(encoding or "utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode(encoding or "utf-8", "backslashreplace")


def _room(fd, deadline):
    """True when fd can take bytes (or has failed: the write says how); False once the deadline
    (None: none) has passed without room."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    timeout = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
    return bool(poller.poll(timeout))


def output(text):
    """Write guard's product (check's JSON, profiles, maps, --help) to stdout; True when written.

    A failure is said on stderr, except a reader that went away (| head -1): it had what it wanted,
    and a program that dies of SIGPIPE says nothing either. The command then exits EXIT_OUTPUT.
    """
    error = write(text, "stdout")
    if error is None:
        return True
    if error.errno != errno.EPIPE:
        write(f"{PREFIX}cannot write to stdout: {error.strerror or error}\n")
    return False
