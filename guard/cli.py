"""Command line: parse flags and GUARD_* variables, then wire the pieces. No logic of its own."""

import os
import sys

from guard import __version__, checks, host, place, profiles, report
from guard.records import record

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 78  # EX_CONFIG (sysexits.h), the code Elasticsearch exits with on failed bootstrap checks
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_OUTPUT = report.EXIT_OUTPUT  # 74, EX_IOERR: stdout could not take guard's output

SUBCOMMANDS = ("check", "fix", "profiles", "maps", "install")


class UsageError(Exception):
    pass


class Option(record("Option", "flag env help metavar choices repeatable switch default only",
                                    defaults=(None, None, False, False, None, None))):
    """repeatable: the variable takes a comma-separated list; switch: takes no value, the variable
    takes 1/0, true/false, yes/no; only: the one command that takes it ("guard", whose supervise
    mode it belongs to, or "fix"), None for all."""

    __slots__ = ()

    @property
    def dest(self):
        return self.flag[2:].replace("-", "_")

    @property
    def takes_value(self):
        return not self.switch


# Every setting, defined once: the flag, its GUARD_* variable, and --help come from here.
OPTIONS = (
    Option("--profile", "GUARD_PROFILE", "checks for this program (default: from COMMAND's name)", "NAME",
           choices=tuple(profiles.PROFILES)),
    Option("--require", "GUARD_REQUIRE", "extra requirement KEY>=VALUE, KEY<=VALUE, KEY=VALUE or KEY!=VALUE, "
           "e.g. vm.max_map_count>=262144 (repeatable)", "SPEC", repeatable=True, default=()),
    Option("--mode", "GUARD_MODE", "enforce: refuse to start on a failed hard check; warn: start anyway",
           choices=("enforce", "warn"), default="enforce"),
    Option("--skip", "GUARD_SKIP", "do not run this check, by name or key (repeatable)", "CHECK",
           repeatable=True, default=()),
    Option("--format", "GUARD_FORMAT", "report format", choices=("text", "json"), default="text"),
    Option("--quiet", "GUARD_QUIET", "print only failures and warnings", switch=True, default=False),
    Option("--place", "GUARD_PLACE", "where guard runs, for the fixes it prints (default: detected from the "
           "kernel release, container markers, Kubernetes' service account and the machine's DMI names)",
           choices=("auto",) + place.PLACES, default="auto"),
    Option("--watch", "GUARD_WATCH", "stay as PID 1: start COMMAND as a child, forward signals, reap "
           "zombies, warn as its memory maps near vm.max_map_count", switch=True, default=False, only="guard"),
    Option("--interval", "GUARD_INTERVAL", "seconds between map samples with --watch", "SECONDS",
           default=1.0, only="guard"),
    Option("--watch-cpu", "GUARD_WATCH_CPU", "with --watch, the most of one core the map samples may "
           "take, in percent: samples are spaced out beyond --interval to stay under it", "PERCENT",
           default=1.5, only="guard"),
    Option("--metrics-file", "GUARD_METRICS_FILE", "with --watch, write Prometheus metrics to this file",
           "PATH", only="guard"),
    Option("--dry-run", "GUARD_DRY_RUN", "guard fix: say what would be written, write nothing", switch=True,
           default=False, only="fix"),
    Option("--persist", "GUARD_PERSIST", "guard fix: also keep the sysctls across reboots in "
           "GUARD_SYSCTL_D/zz-guard-PROFILE.conf, merged, never lower than a line the boot applies",
           switch=True, default=False, only="fix"),
    Option("--every", "GUARD_EVERY", "guard fix: keep running, check and set again every SECONDS (exit 0 on "
           "SIGTERM); a pass is reported when it wrote or found otherwise than the last", "SECONDS", only="fix"),
)
BY_FLAG = {o.flag: o for o in OPTIONS}

# Options that take a number: (exclusive low, inclusive high, what the message asks for).
POSITIVE_NUMBERS = {
    "interval": (0, 1e9, "a number of seconds above 0, at most 1000000000"),
    "every": (0, 1e9, "a number of seconds above 0, at most 1000000000"),
    "watch_cpu": (0, 100, "a percentage above 0, at most 100"),
}

TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")

EPILOG = """\
commands:
  guard [OPTIONS] [--] COMMAND [ARG...]   check, then exec COMMAND (argv verbatim, no shell)
  guard check [OPTIONS] [-- COMMAND...]   check only: exit 0 (pass or warnings) or 78; COMMAND,
                                          never run, selects the profile and its settings
  guard fix [OPTIONS] [--dry-run] [--persist] [--every SECONDS] [-- COMMAND...]
                                          check, raise what falls short where guard runs (never
                                          lowering a value), read it back: exit 0 or 78
  guard profiles                          list the profiles and their requirements
  guard maps [PID...] [--top N] [--format text|json|prometheus] [--output PATH]
             [--every SECONDS] [--watch-cpu PERCENT] [--user UID[:GID]]
                                          memory maps per process against vm.max_map_count
  guard install DIR                       copy this bundle (/opt/guard) into DIR

environment (a flag given on the command line wins over its variable):
{env}
exit codes:
  0    check passed (guard check, fix)   78   a hard check failed (refused; fix: still fails)
  2    usage error                       126  COMMAND found but not executable
  127  COMMAND not found                 70   internal error in guard
  71   --watch: COMMAND could not be started (fork failed: nproc, pids.max)
  1    guard maps: a pid given does not exist or cannot be read
  74   guard check, fix, profiles, maps, --help: stdout (or maps --output) could not be written;
       guard fix --persist: the values could not be kept (with --every: ends it);
       guard install: the copy failed
  75   guard install: another install held DIR for more than 120 s (nothing copied)
  otherwise COMMAND's own exit code (guard has become COMMAND); with --watch, COMMAND's
  exit code, or 128 + the number of the signal that killed it
"""


def _env_help():
    roots = ("  GUARD_PROCFS         where /proc is read, and guard fix writes sysctls (default /proc)\n"
             "  GUARD_SYSFS          where /sys is read, and guard fix writes THP (default /sys)\n"
             "  GUARD_SYSCTL_D       where guard fix --persist keeps sysctls (default ROOT/etc/sysctl.d)\n"
             "  GUARD_SYSCTL_ROOT    the root under which guard fix --persist reads the files the boot\n"
             "                       applies (sysctl.d folders, /etc/sysctl.conf; default / on a host)\n"
             "  GUARD_ROOTFS         where containers' marker files are read, to tell where guard runs (default /)\n")
    return "".join(f"  {o.env:<20} {o.flag}\n" for o in OPTIONS) + roots


DESCRIPTIONS = {
    "guard": "Check the host limits a program needs, then start it or refuse with the fix.",
    "check": "Check the host limits a program needs and print the fix for what falls short; start nothing.",
    "fix": "Set the host settings a program needs from where guard runs, never lowering one, and read "
           "them back; print the fix for what cannot be set from here.",
}


def _argparse():
    """argparse, imported when needed (--help, an error, guard maps and install), with its words
    left untranslated: guard speaks English throughout, and gettext would look for a catalogue in
    the image's locale folders (Debian's Python also in /usr/share/locale-langpack), which the
    bundle promises never to open."""
    import argparse

    argparse._ = lambda message: message
    argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural
    return argparse


def build_parser(prog, with_watch=False, fix=False):
    """The parser of guard (check, then exec: with_watch), guard check, or guard fix (fix)."""
    argparse = _argparse()
    command = "guard" if with_watch else "fix" if fix else "check"
    usage = f"{prog} [OPTIONS]" + (" [--] COMMAND [ARG...]" if with_watch else " [-- COMMAND...]")
    parser = argparse.ArgumentParser(
        prog=prog, usage=usage, add_help=True, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTIONS.get(command, DESCRIPTIONS["guard"]),
        epilog=EPILOG.format(env=_env_help()),
    )
    parser.add_argument("--version", action="version", version=f"guard {__version__}")
    for o in OPTIONS:
        if o.only not in (None, command):
            continue
        default = f" (default {o.default:g})" if isinstance(o.default, float) else ""
        text = f"{o.help}{default} [{o.env}]"
        if o.switch:
            parser.add_argument(o.flag, action="store_const", const=True, default=None, help=text)
        elif o.repeatable:
            parser.add_argument(o.flag, action="append", metavar=o.metavar, default=None, help=text)
        else:
            parser.add_argument(o.flag, metavar=o.metavar or "{" + ",".join(o.choices) + "}",
                                default=None, help=text)
    return parser


def parse_args(parser, args):
    """argparse, with what it prints (--help, --version, a usage error) written the way guard
    writes: a closed or broken stdout or stderr cannot turn --help into an internal error."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return parser.parse_args(args)
    except SystemExit as e:
        written = report.output(out.getvalue()) if out.getvalue() else True
        said = err.getvalue()
        if e.code == EXIT_USAGE and said:  # argparse's "error: ...": say where the options are
            said = f"{said.rstrip()}; {parser.prog} --help lists the options\n"
        report.write(said)
        raise SystemExit(EXIT_OUTPUT if e.code == EXIT_OK and not written else e.code) from None


def parse_options(prog, args, with_watch=False, fix=False):
    """The options of guard, guard check or guard fix, {dest: value, None when not given}.

    Options as users give them (--flag VALUE, --flag=VALUE, switches) are read here; anything
    else (--help, --version, an unknown or abbreviated flag, a missing value, a value that looks
    like an option) goes to argparse, imported only then, which prints or refuses it as it
    always has: argparse's set-up is a fifth of guard's start, paid before every program's start.
    """
    command = "guard" if with_watch else "fix" if fix else "check"
    taken = {o.dest: None for o in OPTIONS if o.only in (None, command)}
    i = 0
    while i < len(args):
        flag, equals, value = args[i].partition("=")
        option = BY_FLAG.get(flag)
        if option is None or option.dest not in taken or (option.switch and equals):
            break
        if option.switch:
            taken[option.dest], i = True, i + 1
            continue
        if not equals:
            if i + 1 == len(args):
                break
            value, i = args[i + 1], i + 1
        i += 1
        if value.startswith("-"):
            break  # argparse decides whether it is a value or a flag
        if option.repeatable:
            taken[option.dest] = (taken[option.dest] or []) + [value]
        else:
            taken[option.dest] = value
    else:
        return taken
    return vars(parse_args(build_parser(prog, with_watch=with_watch, fix=fix), args))


def _split_at_command(args):
    """Options end at '--' or at the first word that is not an option, like tini and env(1)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[:i], args[i + 1:]
        if not arg.startswith("-") or arg == "-":
            return args[:i], args[i:]
        option = BY_FLAG.get(arg)
        i += 2 if option is not None and option.takes_value else 1
    return args, []


def _from_env(option, environ):
    """The variable's value, or None when unset or empty (compose's ${VAR:-} gives empty)."""
    raw = environ.get(option.env)
    if raw is None or not raw.strip():
        return None
    if option.switch:
        word = raw.strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise UsageError(f"{option.env} must be [1|0|true|false|yes|no|on|off] but was [{raw}]")
        return word in TRUE_WORDS
    if option.repeatable:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _validate(option, value, origin):
    if option.choices and value not in option.choices:
        import difflib  # only on this path: guard's start-up pays for what it uses

        near = difflib.get_close_matches(value, option.choices, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise UsageError(f"{origin} must be [{'|'.join(option.choices)}] but was [{value}]{hint}")
    if option.dest in POSITIVE_NUMBERS:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        low, high, what = POSITIVE_NUMBERS[option.dest]
        if not low < number <= high:
            raise UsageError(f"{origin} must be {what} but was [{value}]")
        return number
    return value


def resolve(parsed, environ):
    """Flag, else GUARD_* variable, else default; every value validated and named when bad.

    Only the options this command takes are read: guard check ignores the --watch variables.
    settings["given_by"] names where each value came from (--skip or GUARD_SKIP), for messages."""
    settings, taken, given_by = {}, parsed, {}
    for o in OPTIONS:
        given_by[o.dest] = o.flag
        if o.dest not in taken:
            settings[o.dest] = o.default
            continue
        value = taken[o.dest]
        if value is None:
            value, given_by[o.dest] = _from_env(o, environ), o.env
        if value is None:
            settings[o.dest] = o.default
            continue
        settings[o.dest] = _validate(o, value, given_by[o.dest])
    settings["given_by"] = given_by
    settings["require"] = [_requirement(item, given_by["require"]) for item in settings["require"]]
    return settings


def _requirement(item, origin):
    """A --require SPEC or one item of GUARD_REQUIRE's list; a bad one is named whole, with where
    it came from."""
    try:
        return checks.on_this_kernel(checks.parse_spec(item))
    except checks.SpecError as e:
        where = f"{origin} item" if origin.startswith("GUARD_") else origin
        shown = item if len(item) <= 80 else f"{item[:40]}... ({len(item)} characters)"
        raise UsageError(f"{where} [{shown}]: {e}{_unquoted(item, origin)}") from None


def _unquoted(item, origin):
    """What to say when a SPEC lost its operator to a shell: `--require vm.max_map_count>=262144`
    typed without quotes reaches guard as `vm.max_map_count`, the shell having taken `>=262144` as
    a redirection of guard's output into a file named `=262144`."""
    if origin.startswith("GUARD_") or any(op in item for op in checks.OPERATORS) or not item.strip():
        return ""
    return (f"; if a shell took an unquoted > for a redirection (and made a file named =VALUE, which may be "
            f"removed), quote the requirement: {origin} '{item.strip()}>=VALUE'")


def choose_profile(settings, command):
    if settings["profile"]:
        return profiles.PROFILES[settings["profile"]]
    return profiles.detect(command) if command else None


Planned = record("Planned", "profile own notes requirements")


def plan_checks(settings, command, environ, who):
    """The profile, the program's own words, the notes and the requirements of a run; None when
    guard launches a program no profile knows. who: the command, for a usage error."""
    profile = choose_profile(settings, command)
    if profile is None and not settings["require"]:
        if who != "guard":
            known = ", ".join(profiles.PROFILES)
            if command:
                raise UsageError(f"guard {who}: no profile knows [{os.path.basename(command[0])}]; name one "
                                 f"with --profile NAME ({known}) or give --require SPEC")
            raise UsageError(f"guard {who} needs --profile NAME, --require SPEC or a known COMMAND "
                             f"(profiles: {known})")
        return None
    profile = profile or profiles.PROFILES["none"]
    own = profiles.invocation(profile, command, environ)  # its words and environment, past launchers
    plan = profile.plan(own)
    requirements = checks.with_required(plan.requirements, settings["require"])
    unmatched = checks.unmatched_skips(settings["skip"], requirements)
    if unmatched:
        existing = ", ".join(f"{r.name} ({r.key})" for r in requirements)
        whose = f" of {profile.name}" if profile.name != "none" else ""
        raise UsageError(f"{settings['given_by']['skip']} [{unmatched[0]}] matches no check; "
                         f"the checks{whose} are: {existing}")
    return Planned(profile, own, plan.notes, requirements)


def run_checks(settings, command, environ, where, launching=True):
    """Plan, check, report (stderr; JSON to stdout when nothing is launched).

    Returns the verdict and whether stdout took the JSON (guard's stderr is best effort: what
    cannot be written there changes nothing)."""
    planned = plan_checks(settings, command, environ, "guard" if launching else "check")
    if planned is None:
        if not settings["quiet"]:
            report.write(f"guard: no profile knows [{os.path.basename(command[0])}]; "
                         "starting it unchecked (--profile NAME or GUARD_PROFILE to check)\n")
        return "pass", True
    results = checks.run_checks(planned.requirements, skip=set(settings["skip"]))
    program = os.path.basename(planned.own.argv[0]) if launching else None
    name = planned.profile.name
    written = True
    if settings["format"] == "json":
        text = report.to_json(name, settings["mode"], where, planned.notes, results) + "\n"
        if launching:
            report.write(text)
        else:
            written = report.output(text)
    else:
        report.write(report.to_text(name, where, planned.notes, results, quiet=settings["quiet"]) +
                     report.closing_line(results, settings["mode"], program) +
                     ("" if launching or settings["quiet"] else report.passed(results, name)))
    return report.verdict(results, settings["mode"] == "enforce"), written


def cmd_profiles():
    lines = []
    for profile in profiles.PROFILES.values():
        if profile.name == "none":
            continue
        plan = profile.plan(profiles.Invocation((), {}))
        names = ", ".join(profile.commands)
        lines.append(f"{profile.name}: {profile.summary} (commands: {names})\n")
        for req in plan.requirements:
            level = "hard" if req.hard else "soft"
            lines.append(f"  {req.name:<26} {report.format_requirement(req):<32} {level}  {req.source}\n")
        lines += [f"  note: {note}\n" for note in plan.notes]
    return EXIT_OK if report.output("".join(lines)) else EXIT_OUTPUT


def replaceable(path, given_by):
    """path, when guard may replace it (a regular file or nothing yet), else the usage error:
    the rule of every file guard writes (--metrics-file, maps --output, fix --persist)."""
    problem = host.unfit_to_replace(path)
    if problem:
        raise UsageError(f"{given_by} must be a regular file or a path that does not exist yet, but "
                         f"[{path}] {problem}")
    return path


def cmd_maps(args):
    argparse = _argparse()
    parser = argparse.ArgumentParser(prog="guard maps", description="Memory maps per process "
                                     "against vm.max_map_count, largest first.")
    parser.add_argument("pids", nargs="*", metavar="PID")
    parser.add_argument("--top", type=int, default=None, metavar="N", help="show the N largest")
    parser.add_argument("--format", choices=("text", "json", "prometheus"), default="text")
    parser.add_argument("--output", metavar="PATH", help="replace PATH (a regular file or nothing yet) "
                        "with the view, atomically, instead of writing to stdout")
    parser.add_argument("--every", metavar="SECONDS", help="with --output: keep running, write the whole "
                        "system's view again every SECONDS (exit 0 on SIGTERM)")
    parser.add_argument("--watch-cpu", metavar="PERCENT", help="with --every, the most of one core the "
                        "scans may take (default 1.5): costlier scans are spaced out beyond --every")
    parser.add_argument("--user", metavar="UID[:GID]", help="started as root, become this user (numbers, no "
                        "supplementary group) before reading anything, keeping CAP_SYS_PTRACE alone")
    parsed = parse_args(parser, args)
    if parsed.top is not None and parsed.top < 1:
        raise UsageError(f"--top must be at least 1 but was [{parsed.top}]")
    output = None if parsed.output is None else replaceable(parsed.output, "--output")
    user = None if parsed.user is None else _user(parsed.user)
    from guard import mapsview

    if parsed.every is None:
        if parsed.watch_cpu is not None:
            raise UsageError("--watch-cpu spaces out the scans of --every: give --every SECONDS too")
        _become(user)
        return mapsview.run(parsed.pids, parsed.top, parsed.format, output)
    # the same numbers as guard fix --every and guard --watch-cpu, checked the same way
    every = _validate(BY_FLAG["--every"], parsed.every, "--every")
    cpu = _validate(BY_FLAG["--watch-cpu"], parsed.watch_cpu or BY_FLAG["--watch-cpu"].default, "--watch-cpu")
    if not output or parsed.pids:
        raise UsageError("--every keeps a file current with the whole system's view: give --output PATH, "
                         "and no PID")
    _become(user)
    return mapsview.Audit(output, parsed.top, parsed.format).keep_written(every, cpu / 100)


def _user(text):
    """guard maps --user as (text, (uid, gid)), or the usage error."""
    from guard import privileges

    user = privileges.parse_user(text)
    if user is None:
        raise UsageError(f"--user must be UID or UID:GID, numbers other than 0, but was [{text}]")
    return text, user


def _become(user):
    """guard maps --user, once every option is checked, right before the first read."""
    if user is None:
        return
    # What the run imports on its way is imported now, as root: a pip install may sit where the
    # user cannot read it (root's home). contextlib and tempfile: host.replace_file (--output).
    import contextlib  # noqa: F401
    import tempfile  # noqa: F401

    from guard import privileges, supervise  # noqa: F401

    text, (uid, gid) = user
    try:
        kept = privileges.become(uid, gid)
    except privileges.Unconfined as e:
        raise UsageError(f"--user [{text}]: {e.strerror}: guard maps --user needs seccomp filters, which Linux "
                         "has on x86-64 and arm64 (CONFIG_SECCOMP_FILTER)") from None
    except OSError as e:
        raise UsageError(f"--user [{text}]: {e.strerror}: start guard maps as root with CAP_SETUID and "
                         "CAP_SETGID to become another user") from None
    if not kept:  # a run that counts little, said once where the pod's log shows it
        report.write(f"guard: --user [{text}]: CAP_SYS_PTRACE was not held, so only the processes of user {uid} "
                     "can be counted: add SYS_PTRACE to the capabilities guard starts with\n")


def cmd_fix(args, environ):
    """guard fix: the check's profile, settings and requirements, set where guard runs."""
    options, command = _split_at_command(args)
    settings = resolve(parse_options("guard fix", options, fix=True), environ)
    where = place.Detected(environ, settings["place"])
    planned = plan_checks(settings, command, environ, "fix")
    persist_to = None
    if settings["persist"]:
        if where.in_container and not (environ.get("GUARD_SYSCTL_D") or environ.get("GUARD_SYSCTL_ROOT")):
            raise UsageError(f"{settings['given_by']['persist']}: in a container /etc/sysctl.d is the container's "
                             "own, which the node never reads: mount the node's and name it with GUARD_SYSCTL_D "
                             "(or the node's root, with GUARD_SYSCTL_ROOT)")
        from guard import fixes

        persist_to = os.path.join(host.sysctl_d_root(), fixes.sysctl_d_file(planned.profile.name))
        replaceable(persist_to, f"{settings['given_by']['persist']} writes {persist_to}, which")
    from guard import fix

    fixer = fix.Fixer(planned.profile.name, planned.notes, planned.requirements, where, mode=settings["mode"],
                      fmt=settings["format"], quiet=settings["quiet"], skip=settings["skip"],
                      dry_run=settings["dry_run"], persist_to=persist_to)
    if settings["every"]:
        return fixer.keep_fixed(settings["every"])
    verdict, written, trouble = fixer.once()
    if verdict == "refuse":
        return EXIT_REFUSED
    if trouble:
        return fix.EXIT_NOT_KEPT
    return EXIT_OK if written else EXIT_OUTPUT


def cmd_install(args):
    argparse = _argparse()
    parser = argparse.ArgumentParser(prog="guard install", description="Copy this bundle (/opt/guard) "
                                     "into DIR, for a container that mounts DIR at /opt/guard.")
    parser.add_argument("dir", metavar="DIR", help="an existing folder, empty or holding a previous copy")
    parsed = parse_args(parser, args)
    from guard import install

    return install.run(parsed.dir)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args, os.environ)
    except UsageError as e:
        report.write(f"guard: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 128 + 2
    except Exception as e:  # a bug in guard must say so plainly, not scroll a traceback by
        report.write(f"guard: internal error: {type(e).__name__}: {e} (please report it)\n")
        return EXIT_INTERNAL


def _main(args, environ):
    if args and args[0] in SUBCOMMANDS:
        sub, rest = args[0], args[1:]
        if sub == "profiles":
            return cmd_profiles()
        if sub == "maps":
            return cmd_maps(rest)
        if sub == "fix":
            return cmd_fix(rest, environ)
        if sub == "install":
            return cmd_install(rest)
        # guard check -- COMMAND...: the command only selects the profile and its settings (a
        # preflight service reads the same server.properties the broker will); it never runs.
        options, command = _split_at_command(rest)
        settings = resolve(parse_options("guard check", options), environ)
        where = place.Detected(environ, settings["place"])
        verdict, written = run_checks(settings, command, environ, where, launching=False)
        if verdict == "refuse":
            return EXIT_REFUSED  # the verdict first: a refusal never reads as anything milder
        return EXIT_OK if written else EXIT_OUTPUT
    options, command = _split_at_command(args)
    settings = resolve(parse_options("guard", options, with_watch=True), environ)
    if not command:
        raise UsageError("no COMMAND given: guard [OPTIONS] [--] COMMAND [ARG...], or guard check")
    if settings["watch"]:
        from guard import supervise

        if settings["metrics_file"] is not None:
            replaceable(settings["metrics_file"], settings["given_by"]["metrics_file"])
    where = place.Detected(environ, settings["place"])  # detected once, if a fix or the watch asks
    if run_checks(settings, command, environ, where)[0] == "refuse":
        return EXIT_REFUSED
    if settings["watch"]:
        return supervise.run(command, settings["interval"], settings["metrics_file"], where,
                             cpu_share=settings["watch_cpu"] / 100)
    from guard import launch  # here: guard check never execs, and the C core it loads is a tenth of its start

    code, message = launch.exec_program(command)
    report.write(message + "\n")
    return code
