"""Requirements as data, reading the value a requirement names, and judging it.

A requirement is ``KEY OP VALUE`` (``vm.max_map_count>=262144``) plus whether it is hard (refuse
to start) or soft (warn) and where the threshold comes from. Reading goes through guard.host;
judging is a pure function of the requirement and the observed value, so tests feed values
without touching the host.
"""

import collections
import operator
import re

from guard import host
from guard.host import UNLIMITED, Unreadable

OPERATORS = {">=": operator.ge, "<=": operator.le, "=": operator.eq, "!=": operator.ne}
ORDERING = (">=", "<=")

THP_KEY = "transparent_hugepage"
THP_MODES = ("always", "madvise", "never")

# The kernel's release (6.19.0-1-amd64), judged as a version against one such as 5.10 or 7.0.14:
# on as many parts as the version required names, so kernel.osrelease<=6.18 holds for 6.18.5.
KERNEL_RELEASE = "kernel.osrelease"
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}")
_RELEASE_NUMBERS = re.compile(r"[0-9]+(\.[0-9]+)*")

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

_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-/]+?)\s*(>=|<=|!=|=)\s*(\S+?)\s*$")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-/]+)*$")  # "/": a dot within a component
# A component of only slashes in the dotted form is "." or ".." (or "...") in the file's path.
_CLIMBS = re.compile(r"(^|\.)/+(\.|$)")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


class SpecError(ValueError):
    """A requirement that cannot be understood; the message names the bad value."""


# Records are named tuples, not dataclasses: guard runs before every start of the program, and
# importing dataclasses (inspect, ast) cost a quarter of guard's start-up.
class Requirement(collections.namedtuple("Requirement", "key op value hard name source hint fix_value observed")):
    """key: the knob (a dotted sysctl, an rlimit such as nofile or nofile.hard, transparent_hugepage,
    or a program's own setting: "dragonfly --maxmemory", with a space no sysctl has);
    value: int, UNLIMITED or a word; hard: refuse to start when not met (soft ones warn); name:
    kebab-case check name, derived from the key when empty; source: where the threshold comes from;
    hint: extra advice for the fix, specific to the program; fix_value: what the fix sets when it
    is not the value itself (a stricter check of the same knob), None otherwise; observed: the
    value judged when the profile worked it out itself (a program's setting against the host's
    CPUs, the upstream version an Ubuntu kernel names), an Unreadable saying why it could not, or
    None: the key is read from the host when checked."""

    __slots__ = ()

    def __new__(cls, key, op, value, hard=True, name="", source="", hint="", fix_value=None, observed=None):
        return super().__new__(cls, key, op, value, hard, name or default_name(key), source, hint, fix_value,
                               observed)


class Result(collections.namedtuple("Result", "requirement status actual message", defaults=(None, ""))):
    """status: pass | warn | fail | skip; actual: the value read (None when skipped)."""

    __slots__ = ()


def default_name(key):
    """``vm.max_map_count`` -> ``max-map-count``; ``net.core.somaxconn`` -> ``somaxconn``;
    ``nofile.hard`` -> ``nofile-hard``; ``dragonfly --maxmemory`` -> ``maxmemory``."""
    last = key if kind_of(key) == "rlimit" else re.split(r"[. ]", key)[-1]
    return re.sub(r"[._]+", "-", last).strip("-").lower()


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
    """(6, 19, 0) from a kernel release such as ``6.19.0-1-amd64``; None when it starts with no number."""
    match = _RELEASE_NUMBERS.match(release)
    return tuple(int(part) for part in match.group().split(".")) if match else None


def parse_value(text, key):
    """A VALUE of a SPEC: an integer, ``unlimited`` or a word, as the key allows."""
    kind = kind_of(key)
    lowered = text.lower()
    if kind == "kernel":
        if not _VERSION.fullmatch(text):
            raise SpecError(f"[{key}] takes a version such as [5.10] or [7.0.14] but was given [{text}]")
        return text
    if lowered in ("unlimited", "infinity"):
        if kind != "rlimit":
            raise SpecError(f"[unlimited] is only a value for resource limits, not for [{key}]")
        return UNLIMITED
    if re.fullmatch(r"-?[0-9]+", text):
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
    if not _WORD.match(text):
        raise SpecError(f"value must be a number, [unlimited] or a word but was [{text}]")
    return text


def _number(text, key):
    """The integer text spells, or SpecError when it is beyond any kernel value (checked on the
    digits first: Python refuses to convert more than 4300 of them, with a ValueError)."""
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) <= len(str(LARGEST)):
        number = -int(digits) if text.startswith("-") else int(digits)
        if SMALLEST <= number <= LARGEST:
            return number
    shown = f"[{text}]" if len(text) <= 30 else f"[{text[:20]}...] ({len(digits)} digits)"
    raise SpecError(f"[{key}] takes a number of 64 bits at most, as the kernel keeps its values, "
                    f"but was given {shown}")


def parse_spec(text, hard=True):
    """``KEY OP VALUE`` -> Requirement, or SpecError naming what is wrong."""
    match = _SPEC.match(text)
    if not match:
        raise SpecError(
            f"requirement must look like KEY>=VALUE, KEY<=VALUE, KEY=VALUE or KEY!=VALUE "
            f"(e.g. vm.max_map_count>=262144) but was [{text}]"
        )
    given, op, raw = match.groups()
    key = host.sysctl_name(given)  # sysctl(8) accepts vm/max_map_count too
    if not _KEY.match(key):
        raise SpecError(f"[{given}] is not a sysctl name, a resource limit or {THP_KEY}")
    if _CLIMBS.search(key):
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
    if req.op == "=":
        return f"{what} is [{have}] but must be [{want}]"
    return f"{what} is [{have}] but must not be [{want}]"


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
