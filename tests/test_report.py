import json
import os
import resource
import subprocess

from support import crafted_proc, crafted_sys, run_guard, text

INF = resource.RLIM_INFINITY
LIMITS = {"nofile": (1024, 1024), "nproc": (8192, 8192), "as": (INF, INF), "fsize": (INF, INF)}

# The whole report, pinned once: every line a user of the elasticsearch profile sees in a
# container on a host at the kernel's default map count and Docker's old default of 1024 files.
ELASTICSEARCH_IN_A_CONTAINER = """\
guard: elasticsearch: production mode (no network.host or transport setting given, and no elasticsearch.yml to read here: taken as the official image's network.host [0.0.0.0], beyond loopback): checks are enforced
guard: FAIL  max-map-count            max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]
guard: FAIL  file-descriptors         max file descriptors nofile.hard [1024] is too low, increase to at least [65535]
guard: pass  max-threads              max number of threads nproc [8192] >= [4096]
guard: pass  max-size-virtual-memory  max size virtual memory as [unlimited] >= [unlimited]
guard: pass  max-file-size            max file size fsize [unlimited] >= [unlimited]
guard: [2] of [5] checks failed for elasticsearch
guard: [1] max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]
guard:     vm.max_map_count is a node-level setting shared by every container: it cannot be set from inside a container, only on the Docker host.
guard:     To fix this, on the Docker host run as root: sysctl -w vm.max_map_count=262144
guard:     and keep it across reboots: echo 'vm.max_map_count=262144' >> /etc/sysctl.d/zz-guard-elasticsearch.conf
guard:     If your Docker host is a VM, set it in the VM instead; it is lost when the VM restarts:
guard:       Colima: colima ssh -- sudo sysctl -w vm.max_map_count=262144
guard:       Rancher Desktop: rdctl shell sudo sysctl -w vm.max_map_count=262144
guard:       Lima: limactl shell INSTANCE sudo sysctl -w vm.max_map_count=262144
guard:       any VM that runs Docker: docker run --rm --privileged alpine sysctl -w vm.max_map_count=262144
guard: [2] max file descriptors nofile.hard [1024] is too low, increase to at least [65535]
guard:     To fix this, start the container with: docker run --ulimit nofile=65535:65535 ...
guard:     or in compose:
guard:         ulimits:
guard:           nofile:
guard:             soft: 65535
guard:             hard: 65535
guard:     If Docker refuses it (error setting rlimit ...: operation not permitted), raise the daemon's own limit: LimitNOFILE=65535 for dockerd (systemctl edit docker; rootless Docker: systemctl --user edit docker, within the user's own hard limit), then restart it.
guard: check failed (exit 78): fix the failures above, or run with --mode warn (GUARD_MODE=warn) to start anyway
"""


def test_full_report_text_is_pinned(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530}), "GUARD_PLACE": "container"}
    done = run_guard("check", "--profile", "elasticsearch", env=env, limits=LIMITS)
    assert done.returncode == 78
    assert done.stdout == b""
    assert text(done) == ELASTICSEARCH_IN_A_CONTAINER


def redis_host(tmp_path, overcommit):
    """A crafted host for Redis's checks: the given overcommit, a short backlog (128), THP madvise."""
    return {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530, "vm.overcommit_memory": overcommit,
                                                    "net.core.somaxconn": 128}),
            "GUARD_SYSFS": crafted_sys(tmp_path / "sys"), "GUARD_PLACE": "host"}


def test_quiet_report_keeps_only_the_failure_block(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530}), "GUARD_PLACE": "container",
           "GUARD_QUIET": "1"}
    done = run_guard("check", "--profile", "elasticsearch", env=env, limits=LIMITS)
    expected = [line for line in ELASTICSEARCH_IN_A_CONTAINER.splitlines(keepends=True)
                if not line.startswith(("guard: FAIL", "guard: pass", "guard: elasticsearch:"))]
    assert text(done) == "".join(expected)


def test_json_report_on_stdout_for_check(tmp_path):
    env = redis_host(tmp_path, overcommit=1)
    done = run_guard("check", "--profile", "redis", "--format", "json", env=env,
                     limits={"nofile": (1024, 1024)})
    assert done.returncode == 0  # only soft requirements failed: warnings
    report = json.loads(done.stdout)
    assert (report["profile"], report["verdict"], report["mode"], report["place"]) == ("redis", "warn", "enforce", "host")
    checks = {c["key"]: c for c in report["checks"]}
    assert checks["vm.overcommit_memory"]["status"] == "pass"
    somaxconn = checks["net.core.somaxconn"]
    assert (somaxconn["status"], somaxconn["actual"], somaxconn["required"], somaxconn["op"]) == ("warn", 128, 511, ">=")
    assert somaxconn["fix"].startswith("To fix this, run as root: sysctl -w net.core.somaxconn=511")
    assert checks["nofile.hard"]["actual"] == 1024 and checks["nofile.hard"]["required"] == 10032
    for check in report["checks"]:
        assert set(check) >= {"name", "key", "status", "actual", "required", "message", "fix"}


def test_json_report_goes_to_stderr_when_launching(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 300000}), "GUARD_FORMAT": "json"}
    done = run_guard("--require", "vm.max_map_count>=262144", "--", "echo", "program output", env=env)
    assert done.stdout == b"program output\n"
    assert json.loads(done.stderr)["verdict"] == "pass"


def test_unreadable_values_are_skipped_and_never_refuse(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {}), "GUARD_SYSFS": str(tmp_path / "nosys")}
    done = run_guard("check", "--profile", "redis", "--format", "json", env=env)
    assert done.returncode == 0, text(done)
    statuses = {c["key"]: c["status"] for c in json.loads(done.stdout)["checks"]}
    assert statuses["vm.overcommit_memory"] == statuses["net.core.somaxconn"] == "skip"


def test_only_soft_failures_are_counted_as_warnings_not_failures(tmp_path):
    env = redis_host(tmp_path, overcommit=1)
    done = run_guard("check", "--profile", "redis", env=env, limits={"nofile": (1024, 1024)})
    assert done.returncode == 0
    assert "guard: [2] of [3] checks gave a warning for redis; none of them stops it from starting\n" in text(done)
    assert "failed" not in text(done)


def test_failures_and_warnings_are_counted_apart(tmp_path):
    env = redis_host(tmp_path, overcommit=0)
    done = run_guard("check", "--profile", "redis", "--require", "vm.overcommit_memory=1", env=env,
                     limits={"nofile": (1024, 1024)})
    assert done.returncode == 78
    assert "guard: [1] of [3] checks failed for redis, and [2] gave a warning\n" in text(done)


def test_require_only_report_names_the_require_checks_not_a_profile(tmp_path):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.max_map_count": 65530}), "GUARD_PLACE": "host"}
    done = run_guard("check", "--profile", "none", "--require", "vm.max_map_count>=262144", env=env)
    assert done.returncode == 78
    assert "guard: [1] of [1] checks failed for the --require checks\n" in text(done)
    assert "for none" not in text(done)


def test_the_readmes_first_example_is_this_report():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    assert ("$ docker run --rm --ulimit nofile=1024:1024 guard check --profile elasticsearch\n"
            + ELASTICSEARCH_IN_A_CONTAINER + "```\n") in readme


def test_every_line_the_fixes_keep_across_reboots_survives_the_others(tmp_path):
    # Redis short of two sysctls: the report gives a command for each to keep it across reboots,
    # into one file. Run one after the other, as a user pastes them, the file keeps both.
    proc = crafted_proc(tmp_path / "proc", {"vm.overcommit_memory": 0, "net.core.somaxconn": 128})
    done = run_guard("check", "--profile", "redis", "--place", "host", env={"GUARD_PROCFS": proc})
    commands = [line.split("keep it across reboots: ", 1)[1] for line in text(done).splitlines()
                if "keep it across reboots: " in line]
    assert len(commands) == 2, text(done)
    folder = tmp_path / "sysctl.d"
    folder.mkdir()
    for command in commands:
        subprocess.run(["sh", "-c", command.replace("/etc/sysctl.d/", f"{folder}/")], check=True)
    (kept,) = folder.iterdir()
    assert kept.read_text().splitlines() == ["vm.overcommit_memory=1", "net.core.somaxconn=511"]


def test_a_requirement_that_names_a_profiles_warning_makes_it_a_refusal_in_one_row(tmp_path):
    env = redis_host(tmp_path, overcommit=0)
    done = run_guard("check", "--profile", "redis", "--require", "vm.overcommit_memory=1", env=env,
                     limits={"nofile": (1024, 1024)})
    assert done.returncode == 78
    rows = [line for line in text(done).splitlines() if "vm.overcommit_memory is [0]" in line]
    assert rows == ["guard: FAIL  overcommit  memory overcommit vm.overcommit_memory is [0] but must be [1]",
                    "guard: [1] memory overcommit vm.overcommit_memory is [0] but must be [1]"]
    assert "add --require" not in text(done)  # the advice to make it refuse, given it already
    warned = run_guard("check", "--profile", "redis", env=env, limits={"nofile": (1024, 1024)})
    assert "Redis only warns; to refuse to start without it, add --require vm.overcommit_memory=1." in text(warned)
    json_report = json.loads(run_guard("check", "--profile", "redis", "--require", "vm.overcommit_memory=1",
                                       "--format", "json", env=env, limits={"nofile": (1024, 1024)}).stdout)
    [row] = [c for c in json_report["checks"] if c["key"] == "vm.overcommit_memory"]
    assert (row["name"], row["hard"], row["status"]) == ("overcommit", True, "fail")
    assert row["source"].endswith("; made hard by --require")


def test_a_requirement_with_another_value_is_a_check_of_its_own(tmp_path):
    env = redis_host(tmp_path, overcommit=2)
    done = run_guard("check", "--profile", "redis", "--require", "vm.overcommit_memory!=2", env=env,
                     limits={"nofile": (1024, 1024)})
    assert [c["key"] for c in json.loads(run_guard("check", "--profile", "redis", "--require",
                                                   "vm.overcommit_memory!=2", "--format", "json", env=env,
                                                   limits={"nofile": (1024, 1024)}).stdout)["checks"]
            ].count("vm.overcommit_memory") == 2
    assert done.returncode == 78
