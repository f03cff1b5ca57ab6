"""Rendering the results: one line per check, then one block with every failure and its fix."""


from guard.checks import format_value
from guard.fixes import fix
from guard.host import UNLIMITED

PREFIX = "guard: "
STATUS_WORDS = {"pass": "pass", "warn": "warn", "fail": "FAIL", "skip": "skip"}


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


def to_json(profile, mode, place, notes, results, program):
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
            "fix": fix(req, place, program) if r.status in ("fail", "warn") else None,
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


def to_text(profile, mode, place, notes, results, program, quiet=False):
    lines = []
    if not quiet:
        lines += [f"{profile}: {note}" for note in notes]
        width = max((len(r.requirement.name) for r in results), default=0)
        lines += [f"{STATUS_WORDS[r.status]:<4}  {r.requirement.name:<{width}}  {r.message}" for r in results]
    bad = problems(results)
    if bad:
        lines.append(f"[{len(bad)}] of [{len(results)}] checks failed for {profile}")
        for number, r in enumerate(bad, 1):
            kind = "" if r.status == "fail" else " (warning)"
            lines.append(f"[{number}]{kind} {r.message}")
            lines += ["    " + line for line in fix(r.requirement, place, program).splitlines()]
    return "".join(PREFIX + line + "\n" for line in lines)


def closing_line(results, mode, profile, program):
    """What guard does next, said once: refuse, start anyway, or nothing to say."""
    outcome = verdict(results, mode == "enforce")
    if outcome == "refuse":
        start = f"refusing to start {program}" if program else "check failed"
        return (f"{PREFIX}{start} (exit 78): fix the failures above, or run with --mode warn "
                f"(GUARD_MODE=warn) to start anyway\n")
    if outcome == "warn" and program:
        return f"{PREFIX}starting {program} anyway ({mode} mode)\n" if mode == "warn" else ""
    return ""


def format_requirement(req):
    return f"{req.key} {req.op} {format_value(req.value)}"
