"""What a profile is given (the command and its environment) and what it gives back (a plan)."""

import os

from guard.checks import format_value, kernel_maximum
from guard.records import record


class Invocation(record("Invocation", "argv environ notes")):
    """The command guard is about to start, and its environment: where settings come from.
    notes: what guard found on the way to the program's words (an entrypoint that adds to them)."""

    __slots__ = ()

    def __new__(cls, argv=(), environ=None, notes=()):
        return super().__new__(cls, tuple(argv), dict(environ or {}), tuple(notes))


# requirements, and notes: how the configuration shaped them, shown in the report.
Plan = record("Plan", "requirements notes")

# For each ordering operator, the stricter of two thresholds.
STRICTER = {">=": max, "<=": min}


def covering_fixes(requirements):
    """The requirements, each fix set to the strictest threshold the plan holds for the same knob.

    A program's hard limit and its vendor's advice often judge one knob (Elasticsearch's 262144
    maps and the docs' 1048576): when both fail, a fix that sets only the lower value leaves the
    other failing, and the report would print two commands for one setting. Every fix sets the
    strictest value instead, and says which check asks for it.
    """
    covered = []
    for req in requirements:
        stricter = STRICTER.get(req.op)
        same = [r for r in requirements if r.key == req.key and r.op == req.op]
        value = stricter(r.value for r in same) if stricter and len(same) > 1 else req.value
        if value == req.value:
            covered.append(req)
            continue
        asking = ", ".join(r.name for r in same if r.value == value)
        hint = (f"This sets [{format_value(value)}], which {asking} asks for: one change meets both."
                + (f"\n{req.hint}" if req.hint else ""))
        covered.append(req._replace(fix_value=value, hint=hint))
    return covered


def within_the_kernel(requirements):
    """(requirements, notes): each ">=" a program's configuration asks beyond what the kernel takes
    or uses for its knob (Redis's tcp-backlog 2147483647 on a kernel before 4.1, mongod's
    --maxConns) asks for that most instead, and a note says so: a requirement beyond it could never
    pass, and its fix (sysctl -w, ulimit) would be refused."""
    capped, notes = [], []
    for req in requirements:
        beyond = req.op == ">=" and not isinstance(req.value, str) and kernel_maximum(req.key, req.value)
        if beyond:
            most, why = beyond
            notes.append(f"{req.key} [{format_value(req.value)}] ({req.source}) is above [{most}], {why}: "
                         f"guard asks for [{most}]")
            req = req._replace(value=most)
        capped.append(req)
    return capped, notes


class Profile(record("Profile", "name summary commands build")):
    """commands: basenames of the commands that select this profile; build: Invocation -> Plan, or
    "module:function" of guard.profiles, imported when a plan is first asked of it."""

    __slots__ = ()

    def plan(self, invocation):
        build = self.build
        if isinstance(build, str):
            module, _, function = build.partition(":")
            build = getattr(__import__(f"guard.profiles.{module}", fromlist=[function]), function)
        built = build(invocation)
        requirements, notes = within_the_kernel(built.requirements)
        return Plan(covering_fixes(requirements), list(invocation.notes) + list(built.notes) + notes)


def last_option(args, name):
    """The value of the last ``--name VALUE`` or ``--name=VALUE`` in args, or None: a repeated
    option's last value wins (boost::program_options, absl flags and argparse alike)."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            value = arg[len(name) + 1:]
        elif arg == name and i + 1 < len(args):
            value = args[i + 1]
    return value


def on_path(name, environ, folder=None):
    """Where exec finds a bare command name in the PATH of environ (execvp's search: the first
    executable regular file of that name), or None; a relative entry (or an empty one, the
    working folder) from folder when the program starts in another one than guard's."""
    for directory in os.get_exec_path(environ):
        path = os.path.join(folder or "", directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None
