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
            "fix": fix(req, place, profile) if r.status in ("fail", "warn") else None,
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
        lines.append(f"[{len(bad)}] of [{len(results)}] checks failed for {profile}")
        for number, r in enumerate(bad, 1):
            kind = "" if r.status == "fail" else " (warning)"
            lines.append(f"[{number}]{kind} {r.message}")
            lines += ["    " + line for line in fix(r.requirement, place, profile).splitlines()]
    return "".join(PREFIX + line + "\n" for line in lines)


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
