"""Two checks of one knob in a profile: every fix sets the stricter value, so following one fix
never leaves the other failing, and a report never prints two commands for one setting."""

import re

from guard import place, profiles
from guard.checks import Requirement
from guard.fixes import fix
from guard.host import UNLIMITED
from guard.profiles import Invocation
from guard.profiles.plan import covering_fixes
from support import crafted_proc, run_guard, text

HOST = place.Place("host", True)
CONTAINER = place.Place("container", False)


def test_the_lower_threshold_fixes_to_the_higher_and_says_why():
    lower = Requirement("vm.max_map_count", ">=", 262144, True, source="check")
    higher = Requirement("vm.max_map_count", ">=", 1048576, False, name="advice", source="docs")
    fixed_lower, fixed_higher = covering_fixes([lower, higher])
    assert fixed_lower.fix_value == 1048576 and fixed_lower.value == 262144  # the check itself is unchanged
    assert fixed_higher == higher
    text_ = fix(fixed_lower, HOST, "x")
    assert "sysctl -w vm.max_map_count=1048576" in text_ and "=262144" not in text_
    assert text_.endswith("This sets [1048576], which advice asks for: one change meets both.")


def test_an_upper_bound_fixes_to_the_lower_value():
    loose, strict = covering_fixes([Requirement("vm.swappiness", "<=", 10), Requirement("vm.swappiness", "<=", 1,
                                                                                         name="strict")])
    assert loose.fix_value == 1 and strict.fix_value is None


def test_unlimited_is_the_strictest_limit_and_the_programs_hint_is_kept():
    floor, advice = covering_fixes([Requirement("memlock", ">=", 512 << 20, hint="Or turn memory locking off."),
                                    Requirement("memlock", ">=", UNLIMITED, False, name="memory-lock-recommended")])
    assert floor.fix_value == UNLIMITED
    assert floor.hint == ("This sets [unlimited], which memory-lock-recommended asks for: one change meets both.\n"
                          "Or turn memory locking off.")
    assert "docker run --ulimit memlock=-1:-1" in fix(floor, CONTAINER)


def test_checks_of_other_knobs_or_of_equality_are_left_alone():
    reqs = [Requirement("nofile", ">=", 100), Requirement("nofile.hard", ">=", 200),
            Requirement("vm.overcommit_memory", "=", 1), Requirement("vm.overcommit_memory", "!=", 2)]
    assert covering_fixes(reqs) == reqs


def test_sonarqubes_embedded_elasticsearch_checks_fix_to_sonarqubes_own_figures(tmp_path):
    p = profiles.PROFILES["sonarqube"].plan(Invocation((), {"SONAR_JDBC_URL": "jdbc:postgresql://db/sonar"}))
    fixes = {r.name: r.fix_value for r in p.requirements}
    assert fixes["es-max-map-count"] == 524288 and fixes["es-file-descriptors"] == 131072
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530, "fs.file-max": 1 << 20}),
           "GUARD_PLACE": "host", "SONAR_JDBC_URL": "jdbc:postgresql://db/sonar"}
    done = run_guard("check", "--profile", "sonarqube", env=env, limits={"nproc": (8192, 8192)})
    assert done.returncode == 78
    assert set(re.findall(r"vm\.max_map_count=([0-9]+)", text(done))) == {"524288"}
