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

import contextlib
import json
import os

from guard import checks, fixes, host, report, sysctld, turns
from guard.checks import THP_KEY, format_value, kind_of
from guard.host import UNLIMITED
from guard.profiles.plan import STRICTER
from guard.records import record
from guard.report import PREFIX

# --persist could not keep the values (a missing or read-only folder, a full disk): EX_IOERR
# (sysexits.h), as guard's other files that cannot be written; a host that still falls short
# says 78 first.
EXIT_NOT_KEPT = 74


class NotKept(Exception):
    """Ends guard fix --every: --persist failed."""


# Writes of one value before guard fix says another writer keeps lowering it.
ATTEMPTS = 3

# Fixers sharing a file system take turns here (/run/lock: FHS 3.0, lock files that must not
# survive a reboot). A read-only root (a DaemonSet's readOnlyRootFilesystem) has none to take.
LOCK_PATH = "/run/lock/guard-fix.lock"
LOCK_PATIENCE = 10.0  # seconds; a pass takes milliseconds, so a holder this long is stuck


class Change(record("Change", "requirement action before after written error")):
    """What guard fix did about one requirement. action: set | would set | leave | cannot set;
    before: the value read before writing; after: the value read back (for a dry run, the one that
    would be written); written: guard wrote it; error: why it is not fixed, None when it is."""

    __slots__ = ()


class Outcome(record("Outcome", "changes results persisted notes wrote trouble overridden")):
    """One pass: the changes; the checks read afterwards (the verification); the sysctl.d file
    that keeps the values (None when not asked or not kept); lines to say after the changes;
    whether anything was written; what went wrong besides the checks (a file not persisted); the
    lines the boot applies after the file that set a value less strict than it keeps."""

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
    if kind == "sysctl" and fixes.is_namespaced(req.key) and where.in_container:
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


@contextlib.contextmanager
def taking_turns(path=LOCK_PATH, patience=LOCK_PATIENCE, folder=False, create=True):
    """Hold an flock on path (a lock file, or a folder), if it can be had, while the body runs;
    yields a line to say when guard fix goes on without it after waiting (None otherwise).
    Without create, a missing lock file is not made (a dry run writes nothing): no fixer that
    could be writing meanwhile has been here since the file system was mounted."""
    with turns.turn(path, patience, folder, create) as state:
        yield (f"another guard fix has held {path} for more than [{patience:g}] seconds: going on without it"
               if state == turns.BUSY else None)


# --- --persist: one sysctl.d file, merged, never lower than what the boot applies ------------


def _kept(reqs, known):
    """The value to keep for one key: what its requirements set, the strictest of them, unless a
    value known already (a line the boot applies for the key, the node's value now) meets them
    more strictly: never lower for ">=", nor higher for "<=". guard's file overrides every file
    applied before it, so keeping less than one of them would lower the node at its next boot,
    and the node's value now may come from a file or a tool guard does not see. An "=" sets the
    value it names, whatever else is asked of the key."""
    numbers, value = [n for n in known if isinstance(n, int)], None
    for req in sorted(reqs, key=lambda r: r.op == "="):
        stricter = STRICTER.get(req.op)
        value = stricter([fixes.target(req), *numbers, *([] if value is None else [value])]) \
            if stricter else fixes.target(req)
    return value


def _by_key(requirements):
    by_key = {}
    for req in requirements:
        by_key.setdefault(req.key, []).append(req)
    return by_key


def merge(text, requirements, known=None):
    """(the file's text with each key's value merged in, {key: value kept}). One line a key, where
    the key first was: only its value is replaced, so a leading '-', the spacing, a comment after
    the value and the line's ending stay; the key's other lines go; new keys are appended with
    the file's line ending. known: values by key that the kept one is never less strict than
    (the boot's lines in other files, the node's now); the file's own lines count too."""
    by_key, known = _by_key(requirements), known or {}
    lines, newline = sysctld.lines_of(text), sysctld.newline_of(text)
    settings = [sysctld.setting(line) for line in lines]
    held = {}
    for found in filter(None, settings):
        held.setdefault(found.key, []).append(found.number)
    merged, kept = [], {}
    for line, found in zip(lines, settings):
        if found and found.key in by_key:
            if found.key in kept:
                continue
            value = kept[found.key] = _kept(by_key[found.key], held[found.key] + known.get(found.key, []))
            if found.number != value and found.value != str(value):
                line = line[:found.start] + str(value) + line[found.end:]
        merged.append(line)
    if not merged:
        merged.append("# Kept by guard fix --persist: one line a key, never lowered; sysctl --system applies it."
                      + newline)
    elif not merged[-1].endswith("\n"):
        merged[-1] += newline
    for key, reqs in by_key.items():
        if key not in kept:
            kept[key] = _kept(reqs, known.get(key, []))
            merged.append(f"{key}={kept[key]}{newline}")
    return "".join(merged), kept


def persistable(results, where):
    """The requirements sysctl.d can keep: every sysctl guard fix sets here, whether it was short
    or not (the file keeps what is required, or what the node has now where that is stricter),
    read and not skipped."""
    return [r.requirement for r in results if r.status != "skip" and kind_of(r.requirement.key) == "sysctl"
            and unsettable(r.requirement, where) is None]


class Kept(record("Kept", "path wrote lines trouble overridden", defaults=((),))):
    """What --persist did: path when the file holds the values (else None), whether it was
    written now, lines to say, the one of them that says it failed (else None), and the lines
    applied after the file at boot that set a value less strict than it keeps (Overridden)."""

    __slots__ = ()


# A line applied after guard's file that sets a key less strictly than guard's file keeps it.
Overridden = record("Overridden", "path key value kept")


def persist(results, where, path, dry_run=False, earlier=None):
    """Keep the sysctls guard fix sets here in path, merged (earlier: the name guard kept them in
    before, whose lines count as any other file's)."""
    lines = []
    thp = [r.requirement for r in results if r.status != "skip" and kind_of(r.requirement.key) == "thp"]
    for req in thp:
        boot = fixes.thp_commands(req.key, fixes.target(req))[1]
        lines.append(f"{THP_KEY} cannot be kept in {os.path.dirname(path)}: to keep it across reboots, {boot}")
    wanted = persistable(results, where)
    if not wanted:
        return Kept(None, False, lines, None)
    running = {r.requirement.key: r.actual for r in results if r.status != "skip"}
    # The node's other folders: under GUARD_SYSCTL_ROOT, or / on a host; a container's own are
    # not the node's, so there only the folder named is read.
    root = host.sysctl_root() or (None if where.in_container else "/")
    # Fixers in two containers that mount the node's folder share no /run/lock, but they share the
    # folder: without turns on it, one's read, merge and replace drops what the other just kept.
    with taking_turns(os.path.dirname(path), folder=True) as waited:
        kept = _merge_into(path, wanted, running, root, dry_run, earlier)
    if root is None:
        lines.append(f"the node's other sysctl folders are not seen from this container (GUARD_SYSCTL_ROOT names "
                     f"where its root is mounted): files there applied after {os.path.basename(path)} are not checked")
    return kept._replace(lines=lines + ([waited] if waited else []) + kept.lines)


def _known(sources, running):
    """Every value the boot's lines set, by key, and the node's now: numbers beyond what the kernel
    takes for a key are left out (the kernel refuses them, so they set nothing)."""
    known = {key: [value] for key, value in running.items() if isinstance(value, int)}
    for source in sources:
        for found in source.settings:
            most = checks.KERNEL_MAXIMA.get(found.key, (None,))[0]
            if found.number is not None and (most is None or found.number <= most):
                known.setdefault(found.key, []).append(found.number)
    return known


def _less_strict(reqs, kept, found):
    """Whether a line applied after guard's file sets the key less strictly than kept."""
    op = "=" if any(r.op == "=" for r in reqs) else reqs[0].op
    if isinstance(kept, str):
        return op == "=" and found.value != kept
    if found.number is None:
        return False  # the kernel refuses it: it sets nothing
    return {">=": found.number < kept, "<=": found.number > kept, "=": found.number != kept}[op]


def _overridden(after, by_key, kept, path, root):
    found, lines = [], []
    conf = os.path.join(root, sysctld.SYSCTL_CONF) if root else None
    for source in after:
        for setting in source.settings:
            if setting.key in kept and _less_strict(by_key[setting.key], kept[setting.key], setting):
                sets = setting.value if setting.number is None else setting.number  # what the kernel takes
                found.append(Overridden(source.path, setting.key, sets, kept[setting.key]))
                order = ("sysctl --system (procps) applies it after every sysctl.d file" if source.path == conf
                         else "sysctl.d files apply in the order of their names")
                lines.append(f"{source.path} sets {setting.key} = {setting.value} after {path} ({order}): the node "
                             f"would boot with [{sets}], not the [{kept[setting.key]}] kept; change or remove "
                             "that line")
    return found, lines


def _merge_into(path, wanted, running, root, dry_run, earlier):
    folder, name = os.path.split(path)
    before, after = sysctld.boot_order(folder, name, root)
    lines = [f"cannot read {source.path}: its lines are not checked ({source.trouble})"
             for source in before + after if source.trouble]
    try:
        old = host.read_bytes(path).decode("utf-8", errors="surrogateescape")
    except host.Unreadable as e:
        if not e.missing:
            return Kept(None, False, lines + [f"cannot persist: {e}"], f"cannot persist: {e}")
        old = ""
    new, kept = merge(old, wanted, _known(before + after, running))
    overridden, said = _overridden(after, _by_key(wanted), kept, path, root)
    earlier_path = earlier and os.path.join(folder, earlier)
    if any(source.path == earlier_path and any(s.key in kept for s in source.settings) for source in before):
        lines.append(f"{earlier_path}, where guard fix --persist kept these before, is applied before {path}, which "
                     f"keeps none of them lower: {earlier} may be removed")
    shown = ", ".join(f"{key}={value}" for key, value in kept.items())
    if new == old:
        return Kept(path, False, [f"already persisted: {shown} in {path}"] + lines + said, None, overridden)
    if dry_run:
        return Kept(None, False, [f"would persist {shown} in {path}"] + lines + said, None, overridden)
    try:
        host.replace_file(path, new, 0o644, keep=True)
    except host.Unwritable as e:
        return Kept(None, False, lines + [f"cannot persist: {e}"], f"cannot persist: {e}", overridden)
    return Kept(path, True, [f"persisted {shown} in {path}"] + lines + said, None, overridden)


# --- a pass, and its report -----------------------------------------------------------------


def fix_once(requirements, where, skip=(), dry_run=False, persist_to=None, earlier=None):
    """Check, set what falls short and can be set here, keep it (persist_to; earlier: the name
    guard kept it in before), check again."""
    with taking_turns(create=not dry_run) as waited:
        before = checks.run_checks(requirements, skip=skip)
        changes = changes_for(before, where, dry_run)
        kept = persist(before, where, persist_to, dry_run, earlier) if persist_to else Kept(None, False, [], None)
    after = checks.run_checks(requirements, skip=skip)
    wrote = kept.wrote or any(change.written for change in changes)
    return Outcome(changes, after, kept.path, ([waited] if waited else []) + kept.lines, wrote, kept.trouble,
                   kept.overridden)


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
    elif outcome.trouble:
        text += f"{PREFIX}set, but not kept across reboots (exit {EXIT_NOT_KEPT}): {outcome.trouble}\n"
    elif not quiet:
        text += report.passed(outcome.results, profile)
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
    data["overridden"] = [o._asdict() for o in outcome.overridden]
    return json.dumps(data, indent=2)


class Fixer:
    """guard fix with its settings: one pass, or one every few seconds (--every)."""

    def __init__(self, profile, notes, requirements, where, mode="enforce", fmt="text", quiet=False, skip=(),
                 dry_run=False, persist_to=None):
        self.profile, self.notes, self.requirements, self.where = profile, notes, requirements, where
        self.mode, self.fmt, self.quiet, self.skip = mode, fmt, quiet, set(skip)
        self.dry_run, self.persist_to = dry_run, persist_to
        self.last = None  # what the last pass found, to report a pass only when it differs

    def _pass(self):
        return fix_once(self.requirements, self.where, self.skip, self.dry_run, self.persist_to,
                        fixes.earlier_sysctl_d_file(self.profile))

    def once(self):
        """One pass, reported; (verdict, whether stdout took the JSON, why --persist failed or None)."""
        outcome = self._pass()
        return report.verdict(outcome.results, self.mode == "enforce"), self.say(outcome), outcome.trouble

    def say(self, outcome):
        if self.fmt == "json":
            return report.output(to_json(self.profile, self.where, self.notes, outcome, self.mode, self.dry_run) + "\n")
        report.write(to_text(self.profile, self.where, self.notes, outcome, self.mode, self.quiet, self.dry_run))
        return True

    def again(self):
        """A pass of --every, reported only when it wrote something or found otherwise than the
        last: a DaemonSet's log grows by a report when the node changed, not every interval."""
        outcome = self._pass()
        found = (tuple((c.requirement.key, c.error) for c in outcome.changes if c.error),
                 tuple((r.requirement.name, r.status) for r in report.problems(outcome.results)),
                 outcome.persisted, outcome.trouble)
        if outcome.wrote or found != self.last:
            self.say(outcome)
        self.last = found
        if outcome.trouble:
            raise NotKept(outcome.trouble)

    def keep_fixed(self, every):
        """Pass after pass, every seconds, until SIGTERM or SIGINT (then 0), or until --persist
        fails (then EXIT_NOT_KEPT): a DaemonSet's pod that restarts says so where operators look,
        and each start raises the node again."""
        from guard import supervise

        try:
            return supervise.every(every, self.again)
        except NotKept:
            return EXIT_NOT_KEPT
