"""guard in front of a real valkey-server (Debian 13's, 8.1) in containers, with Valkey's own
start-up warnings as the oracle for the valkey profile: over the same host and container cases,
the knobs guard flags are the ones Valkey warns about, and guard refuses exactly where Valkey
exits. The bundle is copied into an image with Valkey and no Python, as the README says."""

import json
import os
import re
import time

import docker
import pytest
from containers import IMAGES, VALKEY_IMAGE
from hostsettings import THP_ENABLED, host_setting, host_settings_unchanged, sysctl

GUARD = "/opt/guard/bin/guard"
READY = b"Ready to accept connections"
# Valkey's own words for each knob guard judges (src/syscheck.c, src/server.c).
VALKEY_WARNINGS = {
    "vm.overcommit_memory": rb"WARNING Memory overcommit must be enabled",
    "net.core.somaxconn": rb"The TCP backlog setting of \d+ cannot be enforced",
    "nofile.hard": rb"maxclients has been reduced|is not enough for the server to start",
    "transparent_hugepage": rb"Transparent Huge Pages",
}
EXITS = rb"is not enough for the server to start"


def nofile(soft, hard):
    return {"ulimits": [docker.types.Ulimit(name="nofile", soft=soft, hard=hard)]}


def somaxconn(value):
    return {"sysctls": {"net.core.somaxconn": value}}  # the container's own: it has its own network namespace


# (Valkey's arguments, how the container is run): every knob below, at and above what Valkey asks.
CASES = {
    "defaults": ([], {}),
    "backlog-above-somaxconn": (["--tcp-backlog", "8192"], {}),
    "somaxconn-below-backlog": ([], somaxconn(128)),
    "somaxconn-at-backlog": ([], somaxconn(511)),
    "maxclients-above-files": (["--maxclients", "60000"], {}),
    "files-below-maxclients": ([], nofile(1024, 1024)),
    "files-at-maxclients": (["--maxclients", "992"], nofile(1024, 1024)),
    "few-files-left": (["--maxclients", "100"], nofile(40, 40)),
    "no-files-left": ([], nofile(32, 32)),
    "thp-not-disabled": (["--disable-thp", "no"], {}),
}


@pytest.fixture(scope="module")
def valkey_image(made, bundle_image):
    return made.build("bundled-valkey", os.path.join(IMAGES, "bundled"), BUNDLE_IMAGE=bundle_image,
                      TARGET_IMAGE=VALKEY_IMAGE)


def start_valkey(made, image, args, options, timeout=30, through=()):
    """guard --mode warn --format json -- [THROUGH] valkey-server ARGS: (guard's report, Valkey's
    log, whether Valkey got ready). Valkey is stopped once ready; guard's report is on stderr,
    Valkey's on stdout."""
    command = [GUARD, "--mode", "warn", "--format", "json", "--", *through, "valkey-server", "--save", "",
               "--appendonly", "no", *args]
    container = made.container(image, command, **options)
    deadline, log = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        log = container.logs(stdout=True, stderr=False)
        container.reload()
        if READY in log or container.status == "exited":
            break
        time.sleep(0.1)
    if container.status != "exited":
        container.stop(timeout=10)
    container.wait(timeout=30)
    report = json.loads(container.logs(stdout=False, stderr=True))
    return report, container.logs(stdout=True, stderr=False), READY in log


def judged_alike(report, log, ready):
    flagged = {c["key"] for c in report["checks"] if c["status"] in ("fail", "warn")}
    warned = {key for key, pattern in VALKEY_WARNINGS.items() if re.search(pattern, log)}
    assert flagged == warned, (flagged, warned, log.decode(errors="replace"))
    refused = report["verdict"] == "refuse" or any(c["status"] == "fail" for c in report["checks"])
    assert refused == (not ready) == bool(re.search(EXITS, log)), (report, log.decode(errors="replace"))


@pytest.mark.parametrize("case", CASES)
def test_guard_flags_what_valkey_warns_about_and_refuses_where_it_exits(made, valkey_image, case):
    args, options = CASES[case]
    with host_settings_unchanged():  # overcommit and THP are the host's, as they are now
        report, log, ready = start_valkey(made, valkey_image, args, options)
    assert report["profile"] == "valkey"
    judged_alike(report, log, ready)


@pytest.mark.parametrize("overcommit", [0, 1])
def test_overcommit_is_judged_as_valkey_judges_it(made, valkey_image, overcommit):
    with sysctl("vm.overcommit_memory", overcommit):
        report, log, ready = start_valkey(made, valkey_image, [], {})
    judged_alike(report, log, ready)
    status = {c["key"]: c["status"] for c in report["checks"]}["vm.overcommit_memory"]
    assert status == ("warn" if overcommit == 0 else "pass")


@pytest.mark.parametrize("disable_thp", ["yes", "no"])
def test_thp_always_is_judged_as_valkey_judges_it(made, valkey_image, disable_thp):
    """THP [always] on the host: Valkey warns only when it may not turn THP off for itself."""
    with host_setting(THP_ENABLED, "always"):
        report, log, ready = start_valkey(made, valkey_image, ["--disable-thp", disable_thp], {})
    judged_alike(report, log, ready)
    flagged = {c["key"] for c in report["checks"] if c["status"] == "warn"}
    assert ("transparent_hugepage" in flagged) == (disable_thp == "no")


def test_the_fix_names_valkeys_limits_for_the_container(made, valkey_image):
    args, options = CASES["few-files-left"]
    with host_settings_unchanged():
        report, log, ready = start_valkey(made, valkey_image, args, {**options, **somaxconn(128)})
    files = {c["name"]: c for c in report["checks"]}
    assert files["open-files"]["message"] == ("max file descriptors nofile.hard [40] is too low, increase to at "
                                              "least [132]")
    assert "--ulimit nofile=132:132" in files["open-files"]["fix"]
    assert "docker run --sysctl net.core.somaxconn=511" in files["somaxconn"]["fix"]
    assert ready and b"maxclients has been reduced to 8" in log


@pytest.mark.parametrize("through", [["/entrypoint/docker-entrypoint.sh"], []])
def test_the_flags_the_images_entrypoint_appends_are_judged_where_valkey_gets_them(made, valkey_image, tmp_path,
                                                                                 through):
    """VALKEY_EXTRA_FLAGS reaches valkey-server only through the image's entrypoint, which appends it
    unquoted (exec "$@" $VALKEY_EXTRA_FLAGS; a stand-in doing the same here): guard counts its
    maxclients exactly when Valkey does, and Valkey's warning agrees."""
    (tmp_path / "docker-entrypoint.sh").write_text('#!/bin/sh\nexec "$@" $VALKEY_EXTRA_FLAGS\n')
    (tmp_path / "docker-entrypoint.sh").chmod(0o755)
    options = {**nofile(1024, 1024), "environment": {"VALKEY_EXTRA_FLAGS": "--maxclients\t500  --requirepass x"},
               "volumes": {str(tmp_path): {"bind": "/entrypoint", "mode": "ro"}}}
    with host_settings_unchanged():
        report, log, ready = start_valkey(made, valkey_image, [], options, through=through)
    judged_alike(report, log, ready)
    files = {c["name"]: c for c in report["checks"]}["open-files"]
    assert (files["required"], files["status"]) == ((532, "pass") if through else (10032, "warn"))
    assert (b"maxclients has been reduced" in log) == (not through)
    assert any(n.startswith("VALKEY_EXTRA_FLAGS: /entrypoint/docker-entrypoint.sh appends its 4 words")
               for n in report["notes"]) == bool(through), report["notes"]
