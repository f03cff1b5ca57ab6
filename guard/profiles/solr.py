"""Solr: the ulimit warnings of its start script, bin/solr."""

import os
import re

from guard import host
from guard.checks import Requirement, decimal_number
from guard.host import UNLIMITED
from guard.profiles.plan import Plan

# apache/solr solr/bin/solr: on start, restart and status, unless SOLR_ULIMIT_CHECKS is false, it
# compares `ulimit -n` and `ulimit -u` (the soft limits) with these, and wants `ulimit -v` and
# `ulimit -m` unlimited: "*** [WARN] *** Your open file limit is currently N. It should be set to
# 65000 to avoid operational disruption." Solr starts anyway.
SOLR_OPEN_FILES = 65000  # SOLR_RECOMMENDED_OPEN_FILES
SOLR_MAX_PROCESSES = 65000  # SOLR_RECOMMENDED_MAX_PROCESSES
# bin/solr itself, and the commands it checks the limits for (its other commands go to the
# SolrCLI first); the image's scripts (solr-foreground, ...) all run `solr start -f`.
SOLR_SCRIPT, SOLR_CHECKED_COMMANDS = "solr", ("start", "restart")
SOLR_SETTINGS = ("SOLR_ULIMIT_CHECKS", "SOLR_RECOMMENDED_OPEN_FILES", "SOLR_RECOMMENDED_MAX_PROCESSES")
# Where bin/solr looks for its include file when SOLR_INCLUDE is unset (after its own folder and
# ~/.solr.in.sh); the image sets SOLR_INCLUDE=/etc/default/solr.in.sh. An empty SOLR_INCLUDE is
# unset to bin/solr (`[[ -z "${SOLR_INCLUDE:-}" ]]`), whatever its header comment says: it searches.
SOLR_INCLUDES = ("/usr/share/solr/solr.in.sh", "/usr/local/share/solr/solr.in.sh", "/etc/default/solr.in.sh",
                 "/var/solr/solr.in.sh", "/opt/solr/solr.in.sh")
ASSIGNMENT = re.compile(r"^[ \t]*(?:export[ \t]+)?(" + "|".join(SOLR_SETTINGS) + r")=[\"']?([^\"'\s#]*)",
                        re.MULTILINE)


def _include(invocation):
    env = invocation.environ
    if env.get("SOLR_INCLUDE"):
        return env["SOLR_INCLUDE"]
    command = invocation.argv[0] if invocation.argv else ""
    candidates = ([os.path.join(os.path.dirname(command), "solr.in.sh")] if "/" in command else []) + \
        ([os.path.join(env["HOME"], ".solr.in.sh")] if env.get("HOME") else []) + list(SOLR_INCLUDES)
    return next((path for path in candidates if os.path.isfile(path)), None)


def solr_settings(invocation):
    """(settings, notes): the variables, then what the include file bin/solr sources assigns."""
    settings = {name: invocation.environ[name] for name in SOLR_SETTINGS if name in invocation.environ}
    notes, path = [], _include(invocation)
    if path:
        try:
            text = host.read_bytes(path).decode("utf-8", errors="replace")
        except host.Unreadable as e:
            notes.append(f"include file: {e}; judged without its settings")
        else:
            settings.update(ASSIGNMENT.findall(text))
    return settings, notes


def _threshold(settings, name, default, notes):
    """The number bin/solr compares a limit with (`: "${NAME:=default}"`), or None when its
    `[ N -lt "$NAME" ]` fails on the value, so that it warns of nothing."""
    value = settings.get(name, "") or str(default)
    number = decimal_number(value, -(1 << 63), (1 << 63) - 1)  # bash's test: a 64-bit integer
    if number is None:
        notes.append(f"{name} [{value}] is not an integer: bin/solr's test of it fails and it warns of nothing; "
                     "neither does guard")
    return number


def solr_plan(invocation):
    settings, notes = solr_settings(invocation)
    command = os.path.basename(invocation.argv[0]) if invocation.argv else ""
    if command == SOLR_SCRIPT and (invocation.argv[1:2] or [""])[0] not in SOLR_CHECKED_COMMANDS:
        return Plan([], notes + ["bin/solr checks the limits only for start and restart: nothing to check"])
    if settings.get("SOLR_ULIMIT_CHECKS") == "false":  # bin/solr: [[ "${SOLR_ULIMIT_CHECKS:-}" != "false" ]]
        return Plan([], notes + ["SOLR_ULIMIT_CHECKS=false: bin/solr checks no limit, and neither does guard"])
    files = _threshold(settings, "SOLR_RECOMMENDED_OPEN_FILES", SOLR_OPEN_FILES, notes)
    processes = _threshold(settings, "SOLR_RECOMMENDED_MAX_PROCESSES", SOLR_MAX_PROCESSES, notes)
    source = "Solr bin/solr ulimit checks: "
    hint = "Solr only warns; SOLR_ULIMIT_CHECKS=false turns its checks (and these) off."
    reqs = [
        Requirement("nofile", ">=", files, False, name="open-files", hint=hint,
                    source=source + f"SOLR_RECOMMENDED_OPEN_FILES [{files}]"),
        Requirement("nproc", ">=", processes, False, name="max-processes", hint=hint,
                    source=source + f"SOLR_RECOMMENDED_MAX_PROCESSES [{processes}]"),
        Requirement("as", ">=", UNLIMITED, False, name="virtual-memory", hint=hint,
                    source=source + "ulimit -v unlimited"),
    ]
    return Plan([req for req in reqs if req.value is not None],
                notes + ["bin/solr also wants `ulimit -m` unlimited: RLIMIT_RSS has no effect on Linux since 2.6, "
                         "so guard leaves it"])
