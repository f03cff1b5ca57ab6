"""Requirements as data, reading the value a requirement names, and judging it.

A requirement is ``KEY OP VALUE`` (``vm.max_map_count>=262144``) plus whether it is hard (refuse
to start) or soft (warn) and where the threshold comes from. Reading goes through guard.host;
judging is a pure function of the requirement and the observed value, so tests feed values
without touching the host.
"""

import _operator as operator  # the C module: the Python wrapper is more to import before every start
import os
import stat

from guard import host
from guard.host import UNLIMITED, Unreadable
from guard.records import record

OPERATORS = {">=": operator.ge, "<=": operator.le, "=": operator.eq, "!=": operator.ne}
ORDERING = (">=", "<=")

THP_KEY = "transparent_hugepage"
THP_MODES = ("always", "madvise", "never")

# The kernel's release (6.19.0-1-amd64), judged as a version against one such as 5.10 or 7.0.14:
# on as many parts as the version required names, so kernel.osrelease<=6.18 holds for 6.18.5.
KERNEL_RELEASE = "kernel.osrelease"

# Every value guard reads is a C long or unsigned long (sysctls, rlimits: 64 bits on the
# platforms guard runs on); a number beyond that can never be met or missed by a host.
SMALLEST, LARGEST = -(1 << 63), (1 << 64) - 1

# Human names for the knobs users meet most, used in messages before the knob itself, as in
# Elasticsearch's "max virtual memory areas vm.max_map_count [65530] is too low".
LABELS = {
    "vm.max_map_count": "max virtual memory areas",
    "vm.overcommit_memory": "memory overcommit",
    "vm.swappiness": "swappiness",
    "net.core.somaxconn": "TCP listen backlog",
    "fs.file-max": "system-wide open files",
    "nofile": "max file descriptors",
    "nproc": "max number of threads",
    "memlock": "max locked memory",
    "as": "max size virtual memory",
    "fsize": "max file size",
    "core": "max core file size",
    "stack": "max stack size",
    THP_KEY: "transparent huge pages",
    KERNEL_RELEASE: "Linux kernel",
}


# The grammar of a SPEC, read with str methods: a SPEC comes with most runs (GUARD_REQUIRE in the
# compose stacks), and importing re (and enum with it) would be a fifth of guard's start.
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_NAME_CHARACTERS = _ASCII_LETTERS | frozenset("0123456789_-")
_KEY_CHARACTERS = _NAME_CHARACTERS | frozenset("./")
_OPERATOR_STARTS = "<>!="


def _split_spec(text):
    """(key, op, value) of ``KEY OP VALUE`` (spaces allowed around each), or None: KEY of letters,
    digits, _ - . /; OP the first of >= <= != = in the text; VALUE one word."""
    start = next((i for i, c in enumerate(text) if c in _OPERATOR_STARTS), None)
    if start is None:
        return None
    op = text[start:start + 2] if text[start:start + 2] in (">=", "<=", "!=") else text[start]
    key, value = text[:start].strip(), text[start + len(op):].strip()
    if op not in OPERATORS or not key or not _KEY_CHARACTERS.issuperset(key) or not value:
        return None
    if any(c.isspace() for c in value):
        return None  # two words
    return key, op, value


def _is_key(key):
    """A sysctl in its dotted form: components of letters, digits, _ and -, the first without /."""
    first, *rest = key.split(".")
    return bool(first) and _NAME_CHARACTERS.issuperset(first) and all(
        part and (_NAME_CHARACTERS | {"/"}).issuperset(part) for part in rest)


def _climbs(key):
    """Whether a component of the dotted form is only slashes: "." or ".." (or "...") in the path."""
    return any(part and set(part) == {"/"} for part in key.split("."))


def _is_word(text):
    return bool(text) and text[0] in _ASCII_LETTERS and _NAME_CHARACTERS.issuperset(text)


def is_decimal(text):
    """Whether text is an integer as the kernel writes one: an optional '-', then ASCII digits
    (not "1_000", which int() takes, nor other scripts' digits, which str.isdigit() takes)."""
    digits = text[1:] if text[:1] == "-" else text
    return digits.isascii() and digits.isdigit()


def decimal_number(text, low=None, high=None):
    """The int text spells as is_decimal allows it, when it is from low to high (64 bits by default);
    None otherwise. The digits are counted before int() sees them: int() refuses a string of more
    than 4300 digits with a ValueError (CVE-2020-10735), and no value guard judges has more than 20."""
    digits = text.lstrip("-").lstrip("0") or "0"
    if not is_decimal(text) or len(digits) > len(str(LARGEST)):
        return None
    number = -int(digits) if text.startswith("-") else int(digits)
    return number if (SMALLEST if low is None else low) <= number <= (LARGEST if high is None else high) else None


class SpecError(ValueError):
    """A requirement that cannot be understood; the message names the bad value."""


# Records are named tuples (guard.records), not dataclasses: guard runs before every start of the
# program, and importing dataclasses (inspect, ast) cost a quarter of guard's start-up.
class Requirement(record("Requirement", "key op value hard name source hint fix_value observed soft_hint")):
    """key: the knob (a dotted sysctl, an rlimit such as nofile or nofile.hard, transparent_hugepage,
    or a program's own setting: "dragonfly --maxmemory", with a space no sysctl has);
    value: int, UNLIMITED or a word; hard: refuse to start when not met (soft ones warn); name:
    kebab-case check name, derived from the key when empty; source: where the threshold comes from;
    hint: extra advice for the fix, specific to the program; fix_value: what the fix sets when it
    is not the value itself (a stricter check of the same knob), None otherwise; observed: the
    value judged when the profile worked it out itself (a program's setting against the host's
    CPUs, the upstream version an Ubuntu kernel names), an Unreadable saying why it could not, or
    None: the key is read from the host when checked; soft_hint: advice shown only while the check
    is soft (how to make it refuse), moot once it is hard."""

    __slots__ = ()

    def __new__(cls, key, op, value, hard=True, name="", source="", hint="", fix_value=None, observed=None,
                soft_hint=""):
        return super().__new__(cls, key, op, value, hard, name or default_name(key), source, hint, fix_value,
                               observed, soft_hint)


class Result(record("Result", "requirement status actual message", defaults=(None, ""))):
    """status: pass | warn | fail | skip; actual: the value read (None when skipped)."""

    __slots__ = ()


def default_name(key):
    """``vm.max_map_count`` -> ``max-map-count``; ``net.core.somaxconn`` -> ``somaxconn``;
    ``nofile.hard`` -> ``nofile-hard``; ``dragonfly --maxmemory`` -> ``maxmemory``."""
    last = key if kind_of(key) == "rlimit" else key.replace(" ", ".").rsplit(".", 1)[-1]
    words = last.replace(".", "_").split("_")  # a run of dots and underscores is one dash
    return "-".join(word for word in words if word).strip("-").lower()


def format_value(value):
    return "unlimited" if value == UNLIMITED else str(value)


def rlimit_parts(key):
    """``nofile`` -> ("nofile", "soft"); ``nofile.hard`` -> ("nofile", "hard"); else None.

    The plain name means the soft limit: the one the kernel enforces on the running program.
    Programs that raise their own soft limit up to the hard one (Redis, the JVM) are judged on
    ``.hard`` by their profiles.
    """
    base, _, which = key.partition(".")
    if base in host.RLIMITS and which in ("", "soft", "hard"):
        return base, which or "soft"
    return None


def kind_of(key):
    if key == THP_KEY:
        return "thp"
    if key == KERNEL_RELEASE:
        return "kernel"
    if " " in key:
        return "program"
    if rlimit_parts(key):
        return "rlimit"
    return "sysctl"


def kernel_version(release):
    """(6, 19, 0) from a kernel release such as ``6.19.0-1-amd64``: the dotted numbers it starts
    with; None when it starts with none."""
    parts = []
    for part in release.split("."):
        digits = part[:len(part) - len(part.lstrip("0123456789"))]
        if digits:
            number = decimal_number(digits)
            if number is None:  # more digits than any kernel's number: the text names no version
                return None
            parts.append(number)
        if not digits or digits != part:
            break
    return tuple(parts) or None


def _is_version(text):
    """Whether text is a version a SPEC may name: up to three dotted whole numbers (5.10, 7.0.14)."""
    parts = text.split(".")
    return len(parts) <= 3 and all(part.isascii() and part.isdigit() and decimal_number(part) is not None
                                   for part in parts)


def parse_value(text, key):
    """A VALUE of a SPEC: an integer, ``unlimited`` or a word, as the key allows."""
    kind = kind_of(key)
    lowered = text.lower()
    if kind == "kernel":
        if not _is_version(text):
            raise SpecError(f"[{key}] takes a version such as [5.10] or [7.0.14] but was given [{text}]")
        return text
    if lowered in ("unlimited", "infinity"):
        if kind != "rlimit":
            raise SpecError(f"[unlimited] is only a value for resource limits, not for [{key}]")
        return UNLIMITED
    if is_decimal(text):
        number = _number(text, key)
        if kind == "rlimit" and number == -1:
            return UNLIMITED  # docker --ulimit and limits.conf spell unlimited as -1
        if kind == "rlimit" and number < 0:
            raise SpecError(f"a resource limit cannot be negative but [{key}] was given [{text}]")
        if kind == "thp":
            raise SpecError(f"[{key}] takes one of [{'|'.join(THP_MODES)}] but was given [{text}]")
        return number
    if kind == "thp":
        if lowered not in THP_MODES:
            raise SpecError(f"[{key}] takes one of [{'|'.join(THP_MODES)}] but was given [{text}]")
        return lowered
    if kind == "rlimit":
        raise SpecError(f"[{key}] takes a number or [unlimited] but was given [{text}]")
    if not _is_word(text):
        raise SpecError(f"value must be a number, [unlimited] or a word but was [{text}]")
    return text


def _number(text, key):
    """The integer text (is_decimal) spells, or SpecError when it is beyond any kernel value."""
    number = decimal_number(text)
    if number is not None:
        return number
    digits = text.lstrip("-").lstrip("0")
    shown = f"[{text}]" if len(text) <= 30 else f"[{text[:20]}...] ({len(digits)} digits)"
    raise SpecError(f"[{key}] takes a number of 64 bits at most, as the kernel keeps its values, "
                    f"but was given {shown}")


def parse_spec(text, hard=True):
    """``KEY OP VALUE`` -> Requirement, or SpecError naming what is wrong."""
    parts = _split_spec(text)
    if parts is None:
        raise SpecError(
            f"requirement must look like KEY>=VALUE, KEY<=VALUE, KEY=VALUE or KEY!=VALUE "
            f"(e.g. vm.max_map_count>=262144) but was [{text}]"
        )
    given, op, raw = parts
    key = host.sysctl_name(given)  # sysctl(8) accepts vm/max_map_count too
    if not _is_key(key):
        raise SpecError(f"[{given}] is not a sysctl name, a resource limit or {THP_KEY}")
    if _climbs(key):
        # sysctl(8) writes nothing outside /proc/sys (procps is_proc_path), and neither does guard fix.
        raise SpecError(f"[{given}] is not a sysctl name: a '.' or '..' component leaves /proc/sys")
    base, _, suffix = key.partition(".")
    if base in host.RLIMITS and suffix not in ("", "soft", "hard"):
        raise SpecError(f"resource limit [{key}] takes a .soft or .hard suffix, not [.{suffix}]")
    if "." not in key and kind_of(key) == "sysctl":
        known = ", ".join(sorted(host.RLIMITS))
        raise SpecError(f"[{key}] is not a sysctl (they have dots), a resource limit ({known}) or {THP_KEY}")
    value = parse_value(raw, key)
    if op in ORDERING and isinstance(value, str) and kind_of(key) != "kernel":
        raise SpecError(f"[{op}] needs a number but [{key}] was given the word [{value}]")
    return Requirement(key=key, op=op, value=value, hard=hard, source="--require")


def with_required(requirements, required):
    """A profile's requirements with the --require SPECs: a SPEC that names a knob, operator and
    value a check of the profile names already makes that check hard (one row per setting, under
    the profile's name and source; a hard one is left as it is), any other is a check of its own.
    A SPEC is always hard, and it is how a profile's warning is made a refusal (Redis's
    overcommit): the warning and the refusal of one setting are not two rows."""
    merged = list(requirements)
    for spec in required:
        same = next((i for i, r in enumerate(merged) if (r.key, r.op, r.value) == (spec.key, spec.op, spec.value)), None)
        if same is None:
            merged.append(spec)
        elif not merged[same].hard:
            merged[same] = merged[same]._replace(hard=True, source=f"{merged[same].source}; made hard by --require")
    return merged


# The most the kernel takes for the knobs whose requirements a program's own configuration sets
# (Redis's tcp-backlog, mongod's --maxConns): a value beyond it is refused by the kernel (EINVAL
# for a sysctl, EPERM for setrlimit), so a requirement beyond it could never pass, nor its fix work.
INT_MAX = (1 << 31) - 1
# fs/file.c sysctl_nr_open_max: fs.nr_open, and with it RLIMIT_NOFILE, is at most INT_MAX rounded
# down to a multiple of BITS_PER_LONG (64-bit kernels).
NR_OPEN_MAX = INT_MAX & ~63
DEFAULT_NR_OPEN = 1 << 20  # fs/file.c sysctl_nr_open: fs.nr_open's default
KERNEL_MAXIMA = {
    # mm/mmap.c: an int from 0, proc_dointvec_minmax (larger values: EINVAL)
    "vm.max_map_count": (INT_MAX, "the most the kernel takes (an int)"),
    # net/core/sysctl_net_core.c: an int from 0, proc_dointvec_minmax
    "net.core.somaxconn": (INT_MAX, "the most the kernel takes (an int)"),
    "nofile": (NR_OPEN_MAX, "the most fs.nr_open can be (fs/file.c sysctl_nr_open_max)"),
}
# Go's net/sock_linux.go maxAckBacklog (Go issues 5030, 41470): before Linux 4.1 a socket keeps its
# listen backlog in 16 bits, min(listen()'s backlog, somaxconn) wraps above 65535 (65536 -> 0).
OLD_KERNEL_BACKLOG_MAX = (1 << 16) - 1


def running_kernel():
    """The running kernel's version numbers (kernel_version of its release), or None when unreadable."""
    try:
        return kernel_version(host.read_sysctl(KERNEL_RELEASE))
    except Unreadable:
        return None


def _kernel_release():
    """(major, minor) of the running kernel, or None when unreadable."""
    version = running_kernel()
    return version[:2] if version and len(version) >= 2 else None


def _nr_open():
    try:
        return int(host.read_sysctl("fs.nr_open"))
    except (Unreadable, ValueError):
        return None


def _knob(key):
    """The knob a key judges, as KERNEL_MAXIMA names it: the sysctl, or the limit without .soft/.hard."""
    return rlimit_parts(key)[0] if kind_of(key) == "rlimit" else key


def kernel_maximum(key, value):
    """(the most the kernel takes or uses for key here, why) when value is beyond it, else None.
    The host is read only for a value beyond what a kernel of today takes by default."""
    base = _knob(key)
    if base not in KERNEL_MAXIMA:
        return None
    if base == "net.core.somaxconn" and value > OLD_KERNEL_BACKLOG_MAX and (_kernel_release() or (99, 0)) < (4, 1):
        return OLD_KERNEL_BACKLOG_MAX, "the most a listen backlog keeps before Linux 4.1 (16 bits: above, it wraps)"
    if base == "nofile" and value > DEFAULT_NR_OPEN:
        nr_open = _nr_open()
        if nr_open is not None and value > nr_open:
            return nr_open, "fs.nr_open here, the most setrlimit(2) raises nofile to"
    most, why = KERNEL_MAXIMA[base]
    return (most, why) if value > most else None


def on_this_kernel(req):
    """req, or SpecError when no kernel could ever meet it (beyond the most the kernel takes for
    its key: fs.nr_open can be raised, so only nofile's absolute bound counts) or its key names
    no sysctl here (unknown_sysctl)."""
    most, why = KERNEL_MAXIMA.get(_knob(req.key), (None, ""))
    if req.op in (">=", "=") and most is not None and not isinstance(req.value, str) and req.value > most:
        raise SpecError(f"[{req.key}] is at most [{most}], {why}: [{req.op} {format_value(req.value)}] can "
                        "never be met, and no fix could set it")
    if kind_of(req.key) == "sysctl":
        unknown_sysctl(req.key)
    return req


# How close a name must be to a real one (difflib's ratio) to be taken for a misspelling of it.
NEAR = 0.8


def _nearest(components, entries, rest):
    """The real sysctl closest to components + rest, walking down from the folder holding entries,
    one close name at a time; None when some step has no close name."""
    import difflib  # only on this path: a key that names nothing is rare, guard's start-up is not

    found = list(components)
    for depth, name in enumerate(rest):
        last = depth == len(rest) - 1
        close = [n for n in difflib.get_close_matches(name, entries, n=3, cutoff=NEAR) if entries[n] != last]
        if not close:
            return None
        found.append(close[0])
        if not last:
            try:
                entries = host.sysctl_folder(found)
            except Unreadable:
                return None
    return host.sysctl_name("/".join(found))


# A sysctl the kernel lists in the host's own network namespace alone (net/core/sysctl_net_core.c
# registers net_core_table for init_net only; ipv4_table's tcp_mem likewise): where it is seen, every
# net.* key of the loaded modules is; where it is not (a container's own namespace), a net.* key
# missing may be the host's, however close it is to one of the namespace's (tcp_mem, tcp_wmem).
HOST_NETWORK_NAMESPACE_KEY = "net.core.netdev_max_backlog"


def unknown_sysctl(key):
    """SpecError when key names no sysctl on this kernel: /proc/sys has the folder it would be in,
    but not it (vm.maxmapcount), or has a name close to a folder it names (vmm.max_map_count).
    The nearest real key is suggested. None when it exists, when /proc/sys cannot tell, or when it
    may be absent only from this view: a key under net. depends on the network namespace (a
    container's lacks the host's own, and its interfaces differ) and on modules loaded later
    (nf_conntrack), and a folder of its own may be a module's (fs.nfs, sunrpc); a key that
    exists but cannot be read is skipped when checked, with the reason."""
    path = host.sysctl_path(key)
    try:
        found = os.lstat(path)  # the common case, in one lstat
    except (OSError, ValueError):
        pass
    else:
        if stat.S_ISDIR(found.st_mode):
            raise SpecError(f"[{key}] names no sysctl: {path} is a folder of them, not a sysctl")
        return None
    components = host.sysctl_components(key)
    namespaced = components[0] == "net"
    if namespaced and not os.path.lexists(host.sysctl_path(HOST_NETWORK_NAMESPACE_KEY)):
        return None
    try:
        entries = host.sysctl_folder([])
    except Unreadable:
        return None
    for depth, name in enumerate(components):
        last, folder = depth == len(components) - 1, components[:depth]
        shown = os.path.join(host.proc_root(), "sys", *folder)
        if name in entries and (last or entries[name]):
            if last:
                return None
            try:
                entries = host.sysctl_folder(components[:depth + 1])
            except Unreadable:
                return None
            continue
        if name in entries:  # a sysctl where the key needs a folder
            raise SpecError(f"[{key}] names no sysctl: {os.path.join(shown, name)} is a sysctl, not a folder of them")
        if namespaced and not last:
            return None
        near = _nearest(folder, entries, components[depth:])
        if near is None and (namespaced or not last):
            return None
        hint = f"; did you mean {near}?" if near else ""
        raise SpecError(f"[{key}] names no sysctl: {shown} has no {name}{hint}")
    return None


def read_value(key):
    """The observed value of a key: int, UNLIMITED or a word. Raises Unreadable."""
    kind = kind_of(key)
    if kind == "thp":
        return host.read_thp()
    if kind == "program":
        raise Unreadable(f"[{key}] is the program's own setting: its profile works it out, not the host")
    if kind == "rlimit":
        base, which = rlimit_parts(key)
        soft, hard = host.read_rlimit(base)
        return soft if which == "soft" else hard
    text = host.read_sysctl(key)
    try:
        return int(text)
    except ValueError:
        return text


def describe(key):
    label = LABELS.get(key) or LABELS.get(key.split(".", 1)[0] if kind_of(key) == "rlimit" else key)
    return f"{label} {key}" if label else key


def failure_message(req, actual):
    """The one sentence users search for: knob, actual and required value in brackets."""
    what, have, want = describe(req.key), format_value(actual), format_value(req.value)
    if req.op == ">=":
        at_least = "" if req.value == UNLIMITED else "at least "
        return f"{what} [{have}] is too low, increase to {at_least}[{want}]"
    if req.op == "<=":
        return f"{what} [{have}] is too high, decrease to at most [{want}]"
    # A soft check is advice: the program starts without it, so it "should" be, not "must".
    verb = "must" if req.hard else "should"
    if req.op == "=":
        return f"{what} is [{have}] but {verb} be [{want}]"
    return f"{what} is [{have}] but {verb} not be [{want}]"


def judge(req, actual):
    """Compare an observed value with a requirement; never reads the host.

    One rule for a value that cannot be parsed, whatever the operator: a numeric requirement
    and a value that is not a number (empty, a word, a vector such as tcp_rmem's) is skipped with
    the reason, never judged. A word requirement compares the value as text; a kernel release
    compares as a version.
    """
    if kind_of(req.key) == "kernel":
        return _judge_release(req, actual)
    if isinstance(req.value, str):
        actual = actual if isinstance(actual, str) else format_value(actual)
    elif isinstance(actual, str):
        return Result(req, "skip", actual, f"{describe(req.key)} skipped: [{actual}] is not a number")
    if OPERATORS[req.op](actual, req.value):
        return Result(req, "pass", actual, f"{describe(req.key)} [{format_value(actual)}] {req.op} [{format_value(req.value)}]")
    return Result(req, "fail" if req.hard else "warn", actual, failure_message(req, actual))


def _judge_release(req, actual):
    have, want = kernel_version(str(actual)), kernel_version(req.value)
    if have is None:
        return Result(req, "skip", actual, f"{describe(req.key)} skipped: [{actual}] names no version")
    have = (have + (0,) * len(want))[:len(want)]  # 7.0 is 7.0.0, and 6.18.5 is 6.18 against 6.18
    if OPERATORS[req.op](have, want):
        return Result(req, "pass", actual, f"{describe(req.key)} [{actual}] {req.op} [{req.value}]")
    return Result(req, "fail" if req.hard else "warn", actual, failure_message(req, actual))


def run_check(req):
    if req.observed is not None:
        if isinstance(req.observed, Unreadable):
            return Result(req, "skip", None, f"{describe(req.key)} skipped: {req.observed}")
        return judge(req, req.observed)
    try:
        actual = read_value(req.key)
    except Unreadable as e:
        return Result(req, "skip", None, f"{describe(req.key)} skipped: {e}")
    return judge(req, actual)


def _skipped(skip):
    """The names and keys skip names: a key in sysctl(8)'s other spelling too (vm/max_map_count)."""
    return set(skip) | {host.sysctl_name(name) for name in skip}


def unmatched_skips(skip, requirements):
    """The names in skip that name no requirement, by check name or key, in the order given."""
    known = {req.name for req in requirements} | {req.key for req in requirements}
    return [name for name in skip if not _skipped([name]) & known]


def run_checks(requirements, skip=()):
    """Every check runs; none stops the others. Skipped names give a skip result, not silence."""
    results, skip = [], _skipped(skip)
    for req in requirements:
        if req.name in skip or req.key in skip:
            results.append(Result(req, "skip", None, f"{describe(req.key)} skipped: --skip {req.name}"))
        else:
            results.append(run_check(req))
    return results
