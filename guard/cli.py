"""Command line: parse flags and GUARD_* variables, then wire the pieces. No logic of its own."""

import argparse
import collections
import contextlib
import io
import os
import sys

from guard import __version__, checks, host, launch, place, profiles, report

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 78  # EX_CONFIG (sysexits.h), the code Elasticsearch exits with on failed bootstrap checks
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_OUTPUT = report.EXIT_OUTPUT  # 74, EX_IOERR: stdout could not take guard's output

SUBCOMMANDS = ("check", "profiles", "maps")


class UsageError(Exception):
    pass


class Option(collections.namedtuple("Option", "flag env help metavar choices repeatable switch default watch",
                                    defaults=(None, None, False, False, None, False))):
    """repeatable: the variable takes a comma-separated list; switch: takes no value, the variable
    takes 1/0, true/false, yes/no; watch: belongs to supervise mode."""

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
    Option("--place", "GUARD_PLACE", "where fixes must run (default: detected)",
           choices=("auto",) + place.PLACES, default="auto"),
    Option("--watch", "GUARD_WATCH", "stay as PID 1: start COMMAND as a child, forward signals, reap "
           "zombies, warn as its memory maps near vm.max_map_count", switch=True, default=False, watch=True),
    Option("--interval", "GUARD_INTERVAL", "seconds between map samples with --watch", "SECONDS",
           default=1.0, watch=True),
    Option("--watch-cpu", "GUARD_WATCH_CPU", "with --watch, the most of one core the map samples may "
           "take, in percent: samples are spaced out beyond --interval to stay under it", "PERCENT",
           default=1.5, watch=True),
    Option("--metrics-file", "GUARD_METRICS_FILE", "with --watch, write Prometheus metrics to this file",
           "PATH", watch=True),
)
BY_FLAG = {o.flag: o for o in OPTIONS}

# Options that take a number: (exclusive low, inclusive high, what the message asks for).
POSITIVE_NUMBERS = {
    "interval": (0, 1e9, "a number of seconds above 0"),
    "watch_cpu": (0, 100, "a percentage above 0, at most 100"),
}

TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")

EPILOG = """\
commands:
  guard [OPTIONS] [--] COMMAND [ARG...]   check, then exec COMMAND (argv verbatim, no shell)
  guard check [OPTIONS] [-- COMMAND...]   check only: exit 0 (pass or warnings) or 78; COMMAND,
                                          never run, selects the profile and its settings
  guard profiles                          list the profiles and their requirements
  guard maps [PID...] [--top N] [--format text|json|prometheus]
                                          memory maps per process against vm.max_map_count

environment (a flag given on the command line wins over its variable):
{env}
exit codes:
  0    check passed (guard check)        78   a hard check failed (refused)
  2    usage error                       126  COMMAND found but not executable
  127  COMMAND not found                 70   internal error in guard
  1    guard maps: a pid given does not exist or cannot be read
  74   guard check, profiles, maps, --help: stdout could not be written
  otherwise COMMAND's own exit code (guard has become COMMAND); with --watch, COMMAND's
  exit code, or 128 + the number of the signal that killed it
"""


def _env_help():
    roots = ("  GUARD_PROCFS         where /proc is read (default /proc)\n"
             "  GUARD_SYSFS          where /sys is read (default /sys)\n")
    return "".join(f"  {o.env:<20} {o.flag}\n" for o in OPTIONS) + roots


def build_parser(prog, with_watch):
    usage = f"{prog} [OPTIONS]" + (" [--] COMMAND [ARG...]" if with_watch else " [-- COMMAND...]")
    parser = argparse.ArgumentParser(
        prog=prog, usage=usage, add_help=True, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check the host limits a program needs, then start it or refuse with the fix.",
        epilog=EPILOG.format(env=_env_help()),
    )
    parser.add_argument("--version", action="version", version=f"guard {__version__}")
    for o in OPTIONS:
        if o.watch and not with_watch:
            continue
        text = f"{o.help} [{o.env}]"
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
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return parser.parse_args(args)
    except SystemExit as e:
        written = report.output(out.getvalue()) if out.getvalue() else True
        report.write(err.getvalue())
        raise SystemExit(EXIT_OUTPUT if e.code == EXIT_OK and not written else e.code) from None


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
        raise UsageError(f"{origin} must be [{'|'.join(option.choices)}] but was [{value}]")
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
    settings, taken, given_by = {}, vars(parsed), {}
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
    try:
        settings["require"] = [checks.parse_spec(s) for s in settings["require"]]
    except checks.SpecError as e:
        raise UsageError(f"--require: {e}") from None
    return settings


def choose_profile(settings, command):
    if settings["profile"]:
        return profiles.PROFILES[settings["profile"]]
    return profiles.detect(command) if command else None


def run_checks(settings, command, environ, where, launching=True):
    """Plan, check, report (stderr; JSON to stdout when nothing is launched).

    Returns the verdict and whether stdout took the JSON (guard's stderr is best effort: what
    cannot be written there changes nothing)."""
    profile = choose_profile(settings, command)
    if profile is None and not settings["require"]:
        if not launching:
            raise UsageError("guard check needs --profile NAME, --require SPEC or a known COMMAND "
                             f"(profiles: {', '.join(profiles.PROFILES)})")
        if not settings["quiet"]:
            report.write(f"guard: no profile knows [{os.path.basename(command[0])}]; "
                         "starting it unchecked (--profile NAME or GUARD_PROFILE to check)\n")
        return "pass", True
    profile = profile or profiles.PROFILES["none"]
    own = profiles.invocation(profile, command, environ)  # its words and environment, past launchers
    plan = profile.plan(own)
    requirements = plan.requirements + settings["require"]
    unmatched = checks.unmatched_skips(settings["skip"], requirements)
    if unmatched:
        existing = ", ".join(f"{r.name} ({r.key})" for r in requirements)
        whose = f" of {profile.name}" if profile.name != "none" else ""
        raise UsageError(f"{settings['given_by']['skip']} [{unmatched[0]}] matches no check; "
                         f"the checks{whose} are: {existing}")
    results = checks.run_checks(requirements, skip=set(settings["skip"]))
    program = os.path.basename(own.argv[0]) if launching else None
    name = profile.name
    written = True
    if settings["format"] == "json":
        text = report.to_json(name, settings["mode"], where, plan.notes, results) + "\n"
        if launching:
            report.write(text)
        else:
            written = report.output(text)
    else:
        report.write(report.to_text(name, where, plan.notes, results, quiet=settings["quiet"]) +
                     report.closing_line(results, settings["mode"], program))
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
    the rule of every file guard writes (--metrics-file)."""
    problem = host.unfit_to_replace(path)
    if problem:
        raise UsageError(f"{given_by} must be a regular file or a path that does not exist yet, but "
                         f"[{path}] {problem}")
    return path


def cmd_maps(args):
    parser = argparse.ArgumentParser(prog="guard maps", description="Memory maps per process "
                                     "against vm.max_map_count, largest first.")
    parser.add_argument("pids", nargs="*", metavar="PID")
    parser.add_argument("--top", type=int, default=None, metavar="N", help="show the N largest")
    parser.add_argument("--format", choices=("text", "json", "prometheus"), default="text")
    parsed = parse_args(parser, args)
    if parsed.top is not None and parsed.top < 1:
        raise UsageError(f"--top must be at least 1 but was [{parsed.top}]")
    from guard import mapsview

    return mapsview.run(parsed.pids, parsed.top, parsed.format)


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
        # guard check -- COMMAND...: the command only selects the profile and its settings (a
        # preflight service reads the same server.properties the broker will); it never runs.
        options, command = _split_at_command(rest)
        settings = resolve(parse_args(build_parser("guard check", with_watch=False), options), environ)
        where = place.detect(environ, settings["place"])
        verdict, written = run_checks(settings, command, environ, where, launching=False)
        if verdict == "refuse":
            return EXIT_REFUSED  # the verdict first: a refusal never reads as anything milder
        return EXIT_OK if written else EXIT_OUTPUT
    options, command = _split_at_command(args)
    settings = resolve(parse_args(build_parser("guard", with_watch=True), options), environ)
    if not command:
        raise UsageError("no COMMAND given: guard [OPTIONS] [--] COMMAND [ARG...], or guard check")
    if settings["watch"]:
        from guard import supervise

        if settings["metrics_file"]:
            replaceable(settings["metrics_file"], settings["given_by"]["metrics_file"])
    where = place.detect(environ, settings["place"])  # once: the report's fixes and the watch's
    if run_checks(settings, command, environ, where)[0] == "refuse":
        return EXIT_REFUSED
    if settings["watch"]:
        return supervise.run(command, settings["interval"], settings["metrics_file"], where,
                             cpu_share=settings["watch_cpu"] / 100)
    code, message = launch.exec_program(command)
    report.write(message + "\n")
    return code
