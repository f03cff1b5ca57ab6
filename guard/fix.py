"""`guard fix`: set what `guard check` finds short, from where guard runs, and read it back.

guard.fixes says how a requirement is fixed where the user is; this module applies what can be
applied from here:

- node-level sysctls (vm.max_map_count, vm.overcommit_memory) through GUARD_PROCFS/sys, and THP
  through GUARD_SYSFS: as root on a host, or from a container whose /proc/sys is writable (a
  privileged DaemonSet), where the write changes the whole node;
- namespaced sysctls (net.*, IPC) only on a plain host: from a container a write changes that
  container's namespace, not the program's, so the fix says where the container is created;
- resource limits never: a process's limits come from whoever starts it.

A ">=" requirement is raised to its value and never lowered: a node at 1048576 stays there when
262144 is asked. "=" and "<=" set the value named (Redis's vm.overcommit_memory=1); THP's
"!= always" sets madvise (fixes.target). A "!=" on a sysctl names no value, and is left to the fix.

Two fixers at once (a DaemonSet and an init container, or one run by hand): each value is read
again just before it is written, written only if it still falls short, and read back; a read-back
that falls short (another writer lowered it since) is written again, ATTEMPTS times at most.
Fixers that share a file system also take turns on an flock (LOCK_PATH), and --persist on one on
the sysctl.d folder, which containers that mount the node's share. What is left: fixers in
different mount namespaces (two containers) do not see each other's lock, and the kernel has no
compare-and-swap for a sysctl, so a higher value written between one fixer's read and its write
is overwritten by the lower one. When that other writer is guard fix, its read-back sees the
lower value and raises it again; a writer that does not read back (a plain `sysctl -w`) is lowered.
"""

import collections
import contextlib
import fcntl
import json
import os
import re
import time

from guard import checks, fixes, host, report
from guard.checks import THP_KEY, format_value, kind_of
from guard.host import UNLIMITED
from guard.profiles.plan import STRICTER
from guard.report import PREFIX

# Writes of one value before guard fix says another writer keeps lowering it.
ATTEMPTS = 3

# Fixers sharing a file system take turns here (/run/lock: FHS 3.0, lock files that must not
# survive a reboot). A read-only root (a DaemonSet's readOnlyRootFilesystem) has none to take.
LOCK_PATH = "/run/lock/guard-fix.lock"
LOCK_PATIENCE = 10.0  # seconds; a pass takes milliseconds, so a holder this long is stuck


class Change(collections.namedtuple("Change", "requirement action before after written error")):
    """What guard fix did about one requirement. action: set | would set | leave | cannot set;
    before: the value read before writing; after: the value read back (for a dry run, the one that
    would be written); written: guard wrote it; error: why it is not fixed, None when it is."""

    __slots__ = ()


class Outcome(collections.namedtuple("Outcome", "changes results persisted notes wrote trouble")):
    """One pass: the changes; the checks read afterwards (the verification); the sysctl.d file
    that keeps the values (None when not asked or not kept); lines to say after the changes;
    whether anything was written; what went wrong besides the checks (a file not persisted)."""

    __slots__ = ()


def unsettable(req, where):
    """Why guard fix leaves req to its fix at this place, or None when it sets it itself."""
    kind = kind_of(req.key)
    if kind == "rlimit":
        return ("a resource limit is given to a process by whoever starts it: guard fix cannot raise it "
                "for another process")
    if kind == "kernel":
        return "the kernel's release is the one the machine booted"
    if kind == "program":
        return "a setting of the program, not of the host"
    if req.op == "!=" and kind != "thp":
        return f"[!= {format_value(req.value)}] names no value to set"
    if kind == "sysctl" and fixes.is_namespaced(req.key) and where.name != "host":
        return (f"{req.key} is kept per namespace: written from a container it changes that container's "
                "own, not the program's")
    return None


def _write(key, value):
    if kind_of(key) == "thp":
        host.write_thp(value)
    else:
        host.write_sysctl(key, value)


def _passes(req, value):
    return checks.judge(req, value).status == "pass"


def apply(req, dry_run=False):
    """Set req's value unless it already passes, read it back, and again while it falls short:
    the last of the ATTEMPTS + 1 reads returns, whatever it finds."""
    value, before = fixes.target(req), None
    for attempt in range(ATTEMPTS + 1):
        try:
            current = checks.read_value(req.key)
        except host.Unreadable as e:
            return Change(req, "cannot set", before, None, attempt > 0, str(e))
        before = current if attempt == 0 else before
        if _passes(req, current):
            return Change(req, "set" if attempt else "leave", before, current, attempt > 0, None)
        if dry_run:
            return Change(req, "would set", before, value, False, None)
        if attempt == ATTEMPTS:
            return Change(req, "cannot set", before, current, True,
                          f"read back [{format_value(current)}] after [{ATTEMPTS}] writes of [{value}]: "
                          "the kernel does not keep it, or another writer keeps changing it")
        try:
            _write(req.key, value)
        except host.Unwritable as e:
            return Change(req, "cannot set", before, current, attempt > 0, str(e))


def changes_for(results, where, dry_run=False):
    """A change for every sysctl and THP requirement (set, or left as it is) and every failure
    guard fix cannot set here; skipped checks have none (an unread value is never written)."""
    changes = []
    for result in results:
        req = result.requirement
        why_not = unsettable(req, where)
        if result.status == "skip" or (result.status == "pass" and kind_of(req.key) in ("rlimit", "kernel", "program")):
            continue
        if result.status == "pass":
            changes.append(Change(req, "leave", result.actual, result.actual, False, None))
        elif why_not:
            changes.append(Change(req, "cannot set", result.actual, result.actual, False, why_not))
        else:
            changes.append(apply(req, dry_run))
    return changes


def _to_lock(path, folder, create):
    """A descriptor to flock path by, or None when there is none to be had. A folder is opened as
    it is; a lock file is made if missing (and create), and only a regular file is opened (never
    a FIFO or a device in its place), only to lock it: nothing is written to it."""
    with contextlib.suppress(OSError):  # no /run/lock, or read-only: nobody to take turns with here
        if folder:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if host.unfit_to_replace(path) is None:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_CREAT if create else 0)
            return os.open(path, flags, 0o644)
    return None


@contextlib.contextmanager
def taking_turns(path=LOCK_PATH, patience=LOCK_PATIENCE, folder=False, create=True):
    """Hold an flock on path (a lock file, or a folder), if it can be had, while the body runs;
    yields a line to say when guard fix goes on without it after waiting (None otherwise).
    Without create, a missing lock file is not made (a dry run writes nothing): no fixer that
    could be writing meanwhile has been here since the file system was mounted."""
    fd, said = _to_lock(path, folder, create), None
    try:
        deadline = time.monotonic() + patience
        while fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    said = (f"another guard fix has held {path} for more than [{patience:g}] seconds: "
                            "going on without it")
                    break
                time.sleep(0.05)
            except OSError:  # flock(2) ENOLCK: an NFS folder with no lock manager, nobody to take turns with
                break
        yield said
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the flock


# --- --persist: one sysctl.d file, merged ---------------------------------------------------


def _setting(line):
    """(key, value) of a sysctl.d(5) line, or None for a comment or a blank. A leading '-' (ignore
    a failure) and '/' for '.' in the key are sysctl.d's own spellings of the same key."""
    text = line.strip()
    if not text or text[0] in "#;" or "=" not in text:
        return None
    key, _, value = text.lstrip("-").partition("=")
    return host.sysctl_name(key.strip()), value.strip()


def _number(value):
    """value as a number, when it is one as the kernel reads a decimal (not "1_000", as int() would)."""
    if isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value)):
        return int(value)
    return None


def _kept(reqs, *known):
    """The value to keep for one key: what its requirements set, the strictest of them, unless a
    value known already (the file's, the node's now) meets them more strictly: never lower for
    ">=", nor higher for "<=". The file sorts last in sysctl.d (99-), so what it keeps is what the
    node boots with: a node set higher by a file of its own would be lowered at its next boot.
    An "=" sets the value it names, whatever else is asked of the key."""
    value = None
    for req in sorted(reqs, key=lambda r: r.op == "="):
        stricter = STRICTER.get(req.op)
        numbers = [n for n in map(_number, (value, *known)) if n is not None]
        value = stricter([fixes.target(req), *numbers]) if stricter else fixes.target(req)
    return value


def merge(text, requirements, running=None):
    """The sysctl.d file text with each key's value merged in (running: the node's values now, by
    key): one line a key, where the key first was, kept no lower than any of its lines (sysctl.d(5)
    applies the last, which may be the higher one); the others dropped; new keys appended."""
    by_key, running = {}, running or {}
    for req in requirements:
        by_key.setdefault(req.key, []).append(req)
    lines, held = text.splitlines(), {}
    for setting in filter(None, map(_setting, lines)):
        held.setdefault(setting[0], []).append(setting[1])
    merged, kept = [], {}
    for line in lines:
        setting = _setting(line)
        if setting and setting[0] in by_key:
            key, old = setting
            if key in kept:
                continue
            kept[key] = str(_kept(by_key[key], *held[key], running.get(key)))
            line = line if kept[key] == old else f"{key}={kept[key]}"
        merged.append(line)
    if not merged:
        merged.append("# Kept by guard fix --persist: one line a key, never lowered; sysctl --system applies it.")
    for key, reqs in by_key.items():
        if key not in kept:
            kept[key] = str(_kept(reqs, running.get(key)))
            merged.append(f"{key}={kept[key]}")
    return "\n".join(merged) + "\n", kept


def persistable(results, where):
    """The requirements sysctl.d can keep: every sysctl guard fix sets here, whether it was short
    or not (the file keeps what is required, or what the node has now where that is stricter),
    read and not skipped."""
    return [r.requirement for r in results if r.status != "skip" and kind_of(r.requirement.key) == "sysctl"
            and unsettable(r.requirement, where) is None]


class Kept(collections.namedtuple("Kept", "path wrote lines trouble")):
    """What --persist did: path when the file holds the values (else None), whether it was
    written now, lines to say, and the one of them that says it failed (else None)."""

    __slots__ = ()


def persist(results, where, path, dry_run=False):
    lines = []
    thp = [r.requirement for r in results if r.status != "skip" and kind_of(r.requirement.key) == "thp"]
    for req in thp:
        boot = fixes.thp_commands(req.key, fixes.target(req))[1]
        lines.append(f"{THP_KEY} cannot be kept in {os.path.dirname(path)}: to keep it across reboots, {boot}")
    wanted = persistable(results, where)
    if not wanted:
        return Kept(None, False, lines, None)
    running = {r.requirement.key: r.actual for r in results if r.status != "skip"}
    # Fixers in two containers that mount the node's folder share no /run/lock, but they share the
    # folder: without turns on it, one's read, merge and replace drops what the other just kept.
    with taking_turns(os.path.dirname(path), folder=True) as waited:
        kept = _merge_into(path, wanted, running, dry_run)
    return kept._replace(lines=lines + ([waited] if waited else []) + kept.lines)


def _merge_into(path, wanted, running, dry_run):
    try:
        old = host.read_bytes(path).decode("utf-8", errors="surrogateescape")
    except host.Unreadable as e:
        if not e.missing:
            return Kept(None, False, [f"cannot persist: {e}"], f"cannot persist: {e}")
        old = ""
    new, kept = merge(old, wanted, running)
    shown = ", ".join(f"{key}={value}" for key, value in kept.items())
    if new == old:
        return Kept(path, False, [f"already persisted: {shown} in {path}"], None)
    if dry_run:
        return Kept(None, False, [f"would persist {shown} in {path}"], None)
    try:
        host.replace_file(path, new, 0o644)
    except host.Unwritable as e:
        return Kept(None, False, [f"cannot persist: {e}"], f"cannot persist: {e}")
    return Kept(path, True, [f"persisted {shown} in {path}"], None)


# --- a pass, and its report -----------------------------------------------------------------


def fix_once(requirements, where, skip=(), dry_run=False, persist_to=None):
    """Check, set what falls short and can be set here, keep it (persist_to), check again."""
    with taking_turns(create=not dry_run) as waited:
        before = checks.run_checks(requirements, skip=skip)
        changes = changes_for(before, where, dry_run)
        kept = persist(before, where, persist_to, dry_run) if persist_to else Kept(None, False, [], None)
    after = checks.run_checks(requirements, skip=skip)
    wrote = kept.wrote or any(change.written for change in changes)
    return Outcome(changes, after, kept.path, ([waited] if waited else []) + kept.lines, wrote, kept.trouble)


def _shown(value):
    return "?" if value is None else format_value(value)


def change_line(change):
    req = change.requirement
    key, before = req.key, _shown(change.before)
    if change.action == "leave":
        return f"leave {key} [{before}] (already {req.op} [{format_value(req.value)}])"
    if change.action == "cannot set":
        wanted = "" if req.op == "!=" and req.key != THP_KEY else f" -> [{format_value(fixes.target(req))}]"
        return f"cannot set {key} [{before}]{wanted}: {change.error}"
    return f"{change.action} {key} [{before}] -> [{_shown(change.after)}]"


def to_text(profile, where, notes, outcome, mode, quiet=False, dry_run=False):
    """The changes, what persisting did, then the check's report of the host afterwards."""
    lines = [change_line(c) for c in outcome.changes if not (quiet and c.action == "leave")] + outcome.notes
    text = "".join(PREFIX + line + "\n" for line in lines)
    text += report.to_text(profile, where, notes, outcome.results, quiet=quiet)
    if dry_run:
        text += f"{PREFIX}dry run: nothing was written\n"
    elif report.verdict(outcome.results, mode == "enforce") == "refuse":
        text += f"{PREFIX}still failing after guard fix (exit 78): the fixes above must be applied where they say\n"
    return text


def _json_value(value):
    return "unlimited" if value == UNLIMITED else value


def to_json(profile, where, notes, outcome, mode, dry_run=False):
    """The check's JSON of the host afterwards, plus "changes", "persisted" and "dry_run"."""
    data = json.loads(report.to_json(profile, mode, where, notes + outcome.notes, outcome.results))
    data["dry_run"] = dry_run
    data["changes"] = [{"key": c.requirement.key, "before": _json_value(c.before), "after": _json_value(c.after),
                        "written": c.written, "error": c.error} for c in outcome.changes]
    data["persisted"] = outcome.persisted
    return json.dumps(data, indent=2)


class Fixer:
    """guard fix with its settings: one pass, or one every few seconds (--every)."""

    def __init__(self, profile, notes, requirements, where, mode="enforce", fmt="text", quiet=False, skip=(),
                 dry_run=False, persist_to=None):
        self.profile, self.notes, self.requirements, self.where = profile, notes, requirements, where
        self.mode, self.fmt, self.quiet, self.skip = mode, fmt, quiet, set(skip)
        self.dry_run, self.persist_to = dry_run, persist_to
        self.last = None  # what the last pass found, to report a pass only when it differs

    def once(self):
        """One pass, reported; (verdict, whether stdout took the JSON)."""
        outcome = fix_once(self.requirements, self.where, self.skip, self.dry_run, self.persist_to)
        return report.verdict(outcome.results, self.mode == "enforce"), self.say(outcome)

    def say(self, outcome):
        if self.fmt == "json":
            return report.output(to_json(self.profile, self.where, self.notes, outcome, self.mode, self.dry_run) + "\n")
        report.write(to_text(self.profile, self.where, self.notes, outcome, self.mode, self.quiet, self.dry_run))
        return True

    def again(self):
        """A pass of --every, reported only when it wrote something or found otherwise than the
        last: a DaemonSet's log grows by a report when the node changed, not every interval."""
        outcome = fix_once(self.requirements, self.where, self.skip, self.dry_run, self.persist_to)
        found = (tuple((c.requirement.key, c.error) for c in outcome.changes if c.error),
                 tuple((r.requirement.name, r.status) for r in report.problems(outcome.results)),
                 outcome.persisted, outcome.trouble)
        if outcome.wrote or found != self.last:
            self.say(outcome)
        self.last = found

    def keep_fixed(self, every):
        """Pass after pass, every seconds, until SIGTERM or SIGINT; returns 0 then."""
        from guard import supervise

        return supervise.every(every, self.again)
