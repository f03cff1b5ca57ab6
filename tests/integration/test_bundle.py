"""The bundle (docker build --target bundle) in images that have nothing of guard's.

Each case copies /opt/guard into an image, the one COPY line of the README, and runs every
command from it: the check, the prefix exec, --watch, maps and profiles. The images: Redis with
no Python at all; glibc 2.31, older than the build's; no libc at all, only a static busybox (the
stand-in for Alpine/musl and distroless); and the first again, read-only and as an arbitrary UID,
as OpenShift runs it. The arm64 bundle (docker build --platform linux/arm64) goes through the
same cases in arm64 images, run here under QEMU's user-mode emulation: the bundle and every
program in the image are arm64, translated; the kernel is the host's. Where QEMU differs from
arm64 hardware, the arm64 cases check what QEMU makes of it: the environment (rewritten before
guard sees it), the subreaper and seccomp (refused). The tests at the end are amd64 only, each
for its image or its cost: the musl image is the host's x86-64 musl, the name service module is
built here by the host's gcc, and a bundle missing a library is make_bundle.py's check, the same
code for both, which would cost one more emulated build.
"""

import collections
import io
import json
import os
import shlex
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time

import docker
import pytest
from containers import (ARM64, BASE_IMAGE, EXIT_REFUSED, IMAGES, NO_LIBC_IMAGE, NO_LIBC_IMAGE_ARM64,
                        NO_PYTHON_IMAGE, NO_PYTHON_IMAGE_ARM64, OLD_GLIBC_IMAGE, REPO, exec_output, finish,
                        stop_redis_at_pid_1, wait_for_log, wait_for_process)
from environ_program import block, exec_with
from hostsettings import host_settings_unchanged, sysctl

GUARD = "/opt/guard/bin/guard"
ES_SENTENCE = "max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]"
REDIS_READY = "Ready to accept connections"


class Case(collections.namedtuple("Case", "arch target has_redis options")):
    """arch: the bundle's and the image's; target: the image the bundle is copied into; options:
    how its containers are run."""


class Arch(collections.namedtuple("Arch", "bundle_fixture platform machine loader elf_machine")):
    """bundle_fixture: the conftest fixture that builds that bundle; platform: what its builds are
    given (None: the engine's own); machine: uname -m in its containers; loader: its ELF
    interpreter, in /opt/guard/lib; elf_machine: e_machine of its ELF files (elf.h)."""


ARCHES = {
    "amd64": Arch("bundle_image", None, "x86_64", "ld-linux-x86-64.so.2", 62),  # EM_X86_64
    "arm64": Arch("bundle_image_arm64", ARM64, "aarch64", "ld-linux-aarch64.so.1", 183),  # EM_AARCH64
}

# Emulation is slower to start, not to stop. Measured here under QEMU (10 runs of each, 2 vCPUs
# busy with other runs): Redis, a shell and --watch were up within 2.4 s (0.4 s native) and
# `docker stop` returned within 0.5 s (0.2 s native). The 30 s wait for a start and the 5 s bound
# on a stop (which a stop that times out and kills would take 10 s to break) hold for both.
# Where Redis keeps its data and where the metrics go: the only places written, so that the
# read-only case can run the same commands.
WRITABLE = {"tmpfs": {"/data": "", "/run/guard": ""}}
READ_ONLY_UID_4242 = {**WRITABLE, "read_only": True, "user": "4242:0"}
CASES = {
    "no-python": Case("amd64", NO_PYTHON_IMAGE, True, WRITABLE),
    "old-glibc": Case("amd64", OLD_GLIBC_IMAGE, True, WRITABLE),
    "no-libc": Case("amd64", NO_LIBC_IMAGE, False, WRITABLE),
    "read-only-uid-4242": Case("amd64", NO_PYTHON_IMAGE, True, READ_ONLY_UID_4242),
    "arm64-no-python": Case("arm64", NO_PYTHON_IMAGE_ARM64, True, WRITABLE),
    "arm64-no-libc": Case("arm64", NO_LIBC_IMAGE_ARM64, False, WRITABLE),
    "arm64-read-only-uid-4242": Case("arm64", NO_PYTHON_IMAGE_ARM64, True, READ_ONLY_UID_4242),
}


@pytest.fixture(scope="session", params=CASES)
def bundled(request, made):
    """(case, image): the case's target image with the bundle of its architecture copied in."""
    case = CASES[request.param]
    arch = ARCHES[case.arch]
    image = made.build(f"bundled-{request.param}", os.path.join(IMAGES, "bundled"), platform=arch.platform,
                       BUNDLE_IMAGE=request.getfixturevalue(arch.bundle_fixture), TARGET_IMAGE=case.target)
    return case, image


def run(made, bundled, command, **options):
    case, image = bundled
    return made.container(image, command, **{**case.options, **options})


def test_the_image_has_nothing_guard_needs(made, bundled):
    case, image = bundled
    if case.target == NO_LIBC_IMAGE:
        probe = "ls -d /lib* /usr/lib* /usr 2>/dev/null; exit 0"  # no loader, no libc, nothing
        assert finish(run(made, bundled, ["sh", "-c", probe])) == (0, "")
    else:
        status, log = finish(run(made, bundled, ["sh", "-c", "command -v python3 python3.11 python python3.9"]))
        assert status != 0 and log == "", f"the image has a Python: {log}"
    if case.target == OLD_GLIBC_IMAGE:
        status, log = finish(run(made, bundled, ["ldd", "--version"]))
        assert "GLIBC 2.31" in log


def test_the_image_runs_the_bundle_of_its_own_architecture(made, bundled):
    case, image = bundled
    arch = ARCHES[case.arch]
    assert made.client.images.get(image).attrs["Architecture"] == case.arch
    status, log = finish(run(made, bundled, ["uname", "-m"]))
    assert (status, log.strip()) == (0, arch.machine)
    # make_bundle.py took the loader's name from ldd in the build image of that architecture.
    status, log = finish(run(made, bundled, ["ls", f"/opt/guard/lib/{arch.loader}"]))
    assert status == 0, log


def elf_header(data):
    """(e_machine, PT_INTERP's path or None) of a 64-bit little-endian ELF file's bytes, or None
    for any other file."""
    if data[:6] != b"\x7fELF\x02\x01":  # ELFCLASS64, ELFDATA2LSB: both bundles' architectures
        return None
    (machine,) = struct.unpack_from("<H", data, 18)
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return machine, data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return machine, None


@pytest.mark.parametrize("arch", ARCHES)
def test_every_program_and_library_in_the_folder_is_built_for_its_architecture(request, made, arch):
    # Built under emulation, a folder could still take a file of the build machine's (a wheel
    # or a library from the wrong place): it would fail only when loaded. Each ELF file is read
    # from the image, not run; the launcher names the folder's own loader, bin/guard none.
    expected = ARCHES[arch]
    container = made.client.containers.create(request.getfixturevalue(expected.bundle_fixture))
    made.containers.append(container.id)
    stream, _ = container.get_archive("/opt/guard")
    headers = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        for member in archive.getmembers():
            if member.isfile() and (header := elf_header(archive.extractfile(member).read())):
                headers[member.name] = header
    assert len(headers) > 20, headers  # libexec, bin, lib/*.so*, the extension modules
    assert {name: machine for name, (machine, _) in headers.items() if machine != expected.elf_machine} == {}
    assert headers["guard/libexec/guard"][1] == f"/opt/guard/lib/{expected.loader}"
    assert headers["guard/bin/guard"][1] is None  # static: no loader reads the environment first
    assert f"guard/lib/{expected.loader}" in headers


def test_check_refuses_elasticsearch_with_its_own_sentence_and_the_container_fixes(made, bundled):
    limits = [docker.types.Ulimit(name="nofile", soft=1024, hard=1024)]
    with sysctl("vm.max_map_count", 65530):
        status, log = finish(run(made, bundled, [GUARD, "check", "--profile", "elasticsearch"], ulimits=limits))
    assert status == EXIT_REFUSED, log
    assert "[2] of [5] checks failed for elasticsearch" in log
    assert ES_SENTENCE in log
    assert "only on the Docker host" in log
    assert "on the Docker host run as root: sysctl -w vm.max_map_count=262144" in log
    assert "docker run --ulimit nofile=65535:65535" in log


# The image with no libc has no redis-server: the prefix exec is tested there with a shell below.
@pytest.fixture(scope="session")
def tools(environ_program):
    """A folder any UID may read, with tests/environ.c's static program: mounted at /t."""
    folder = tempfile.mkdtemp(prefix="guard-tools-")
    try:
        os.chmod(folder, 0o755)
        shutil.copy(environ_program, os.path.join(folder, "environ"))
        yield {folder: {"bind": "/t", "mode": "ro"}}
    finally:
        shutil.rmtree(folder)


# Without LD_* bin/guard starts guard's Python with the environment as it came, and guard reads
# it from its own stack; with one, bin/guard hands it over in a memfd. Either way the bundle's
# loader cuts GLIBC_TUNABLES in guard's own copy, and the program must get what was given.
GIVEN = {
    "as-it-came": ["PATH=/usr/bin:/bin", "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072",
                   "DUP=1", "NO_EQUALS_SIGN", "DUP=2", "", "LANG=C", "MALLOC_ARENA_MAX=2",
                   "GLIBC_TUNABLES=glibc.pthread.rseq=0:glibc.malloc.mmap_max=5", "GLIBC_TUNABLES=glibc.malloc.arena_max=2:"],
    "in-a-memfd": ["PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=/nonexistent", "LD_BIND_NOW=1",
                   "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072", "DUP=1", "DUP=2",
                   "NO_EQUALS_SIGN", "GUARD_BUNDLE_ENVIRON_FD=7", "GLIBC_TUNABLES=glibc.malloc.arena_max=2::"],
}


def given_environment(made, bundled, tools, envp, mode=(), without_proc=False, **options):
    command = exec_with("/t/environ", envp, GUARD, *mode, "--quiet", "--require", "nofile>=0", "--",
                        "/t/environ", "dump")
    if without_proc:  # a mount namespace of its own with /proc unmounted (takes CAP_SYS_ADMIN)
        command = ["unshare", "-m", "sh", "-c", 'umount -l /proc && exec "$@"', "sh", *command]
        options["cap_add"] = ["SYS_ADMIN"]
    container = run(made, bundled, command, volumes=tools, **options)
    status = container.wait(timeout=60)["StatusCode"]
    return status, container.logs(stdout=True, stderr=False), container.logs(stdout=False, stderr=True)


def as_qemu_starts_it(envp):
    """The environment QEMU's user mode gives a program it starts, built from the one it was
    given (Debian 12's 7.2, linux-user/main.c through util/envlist.c, measured here): the entries
    with '=', one per name, the last given at the place of the last, in reverse order."""
    entries = {}
    for entry in envp:
        if "=" in entry:
            name = entry.split("=", 1)[0]
            entries.pop(name, None)
            entries[name] = entry
    return list(reversed(entries.values()))


# Under QEMU (the arm64 cases) guard is never given the list as given: QEMU starts bin/guard
# with its own rewrite of it, and starts libexec/guard, which bin/guard execs, the same way.
# Without LD_* guard's Python reads what its own start got (rewritten twice); with them it reads
# the list bin/guard got, from the memfd (rewritten once).
QEMU_STARTS_BEFORE_GUARD_READS = {"as-it-came": 2, "in-a-memfd": 1}


def given_to_guard(case, given):
    """The list guard is given: GIVEN[given] natively (amd64), QEMU's rewrite of it (arm64)."""
    envp = GIVEN[given]
    for _ in range(QEMU_STARTS_BEFORE_GUARD_READS[given] if case.arch == "arm64" else 0):
        envp = as_qemu_starts_it(envp)
    return envp


# The program, the test's own x86-64 environ (native in every image), must get exactly the list
# guard was given: duplicates, entries without '=' and all, in order. Natively that is the list as
# given. Under QEMU it is QEMU's rewrite, and the arm64 cases check that guard adds, drops and
# reorders nothing of its own; on arm64 hardware nothing sits between, and the same C code is
# given the list as given, as in the amd64 cases.
@pytest.mark.parametrize("mode", [[], ["--watch"]], ids=["exec", "watch"])
@pytest.mark.parametrize("given", GIVEN)
def test_the_program_gets_the_environment_exactly_as_guard_was_given_it(made, bundled, tools, given, mode):
    case, _ = bundled
    status, out, err = given_environment(made, bundled, tools, GIVEN[given], mode)
    assert (status, err) == (0, b"")
    assert out == block(given_to_guard(case, given))


@pytest.mark.parametrize("bundled", ["no-python", "no-libc", "arm64-no-libc"], indirect=True)
@pytest.mark.parametrize("given", GIVEN)
def test_the_program_gets_the_environment_exactly_as_guard_was_given_it_with_no_proc_mounted(made, bundled, tools,
                                                                                              given):
    case, _ = bundled
    status, out, err = given_environment(made, bundled, tools, GIVEN[given], without_proc=True)
    assert (status, err) == (0, b"")
    assert out == block(given_to_guard(case, given))
    control = run(made, bundled, ["unshare", "-m", "sh", "-c", "umount -l /proc && ls /proc"], cap_add=["SYS_ADMIN"])
    assert finish(control) == (0, "")  # /proc really is empty there


@pytest.mark.parametrize("bundled", [name for name, case in CASES.items() if case.has_redis], indirect=True)
def test_prefix_makes_redis_pid_1_and_docker_stop_gives_its_exit_code(made, bundled):
    redis = ["redis-server", "--dir", "/data", "--save", "", "--appendonly", "no"]
    with sysctl("vm.overcommit_memory", 1):
        container = run(made, bundled, [GUARD, "--", *redis])
        log = wait_for_log(container, REDIS_READY)
    assert "checks failed" not in log
    status, log, stopped_in = stop_redis_at_pid_1(container)
    # Redis got docker stop's SIGTERM itself and exited 0 ("ready to exit"), without the 10 s wait.
    assert status == 0, log
    assert stopped_in < 5, log


def test_prefix_execs_the_program_as_pid_1_and_it_gets_the_stop_signal(made, bundled):
    # A shell that exits 42 on SIGTERM (PID 1 ignores signals it has no handler for).
    program = ["sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"]
    container = run(made, bundled, [GUARD, "--profile", "none", "--", *program])
    wait_for_log(container, "ready")
    assert exec_output(container, "cat", "/proc/1/comm") == (0, "sh")
    started = time.monotonic()
    container.stop(timeout=10)
    assert finish(container)[0] == 42
    assert time.monotonic() - started < 5, "docker stop had to wait for its timeout"


def test_watch_stays_pid_1_writes_metrics_and_passes_the_stop_on(made, bundled):
    metrics = "/run/guard/maps.prom"
    container = run(made, bundled, [GUARD, "--watch", "--interval", "0.2", "--metrics-file", metrics,
                                    "--profile", "none", "--", "sleep", "1000"])
    wait_for_process(container, "sleep")
    assert exec_output(container, "cat", "/proc/1/comm") == (0, "guard")
    # The first sample may be taken between fork and exec, before the child is sleep: wait for
    # one that shows it, every 0.2 s.
    deadline = time.monotonic() + 10
    while 'comm="sleep"' not in (text := exec_output(container, "cat", metrics)[1]):
        assert time.monotonic() < deadline, f"no sample of the child in {metrics}: {text!r}"
        time.sleep(0.1)
    assert "guard_watch_samples_total" in text
    assert "guard_vm_max_map_count" in text
    container.stop(timeout=10)
    assert finish(container)[0] == 143


def kernel_count(host_pid):
    """The number of VMAs the kernel holds for a process (mm->map_count, what vm.max_map_count
    limits), read from the host's /proc with nothing in between: the lines of its maps, less the
    [vsyscall] line x86-64 shows, which is not a VMA."""
    with open(f"/proc/{host_pid}/maps") as f:
        lines = f.read().splitlines()
    return len(lines) - (bool(lines) and lines[-1].endswith("[vsyscall]"))


# Below PID 1 --watch makes itself the subreaper of what its program leaves behind. QEMU's user
# mode (7.2) refuses prctl(PR_SET_CHILD_SUBREAPER) with EINVAL: guard says so and goes on.
SUBREAPER_REFUSED = ("guard: prctl(PR_SET_CHILD_SUBREAPER) failed: Invalid argument; orphaned processes are "
                     "reaped by PID 1, not by guard")


@pytest.mark.parametrize("bundled", ["no-libc", "arm64-no-libc"], indirect=True)
def test_watch_below_pid_1_is_the_subreaper_or_says_why_not(made, bundled):
    case, _ = bundled
    # The program's own child leaves an orphan and exits; the program goes on. The orphan's
    # parent is then guard, or PID 1 (this shell) where guard could not be the subreaper.
    program = "sh -c 'sleep 30 & echo $! >/run/guard/orphan'; sleep 2; exit 3"
    script = (f"{GUARD} --watch --profile none -- sh -c {shlex.quote(program)} & watch=$!\n"
              "while [ ! -s /run/guard/orphan ]; do sleep 0.1; done; sleep 0.5\n"
              "echo guard $watch, orphan of $(cut -d' ' -f4 /proc/$(cat /run/guard/orphan)/stat)\n"
              "wait $watch; echo exit $?\n")
    status, log = finish(run(made, bundled, ["sh", "-c", script]))
    lines = log.splitlines()
    if case.arch == "amd64":
        assert len(lines) == 2 and lines[1] == "exit 3", log
        guard, parent = lines[0].removeprefix("guard ").split(", orphan of ")
        assert parent == guard, log
    else:
        assert lines[0] == SUBREAPER_REFUSED and lines[1].endswith(", orphan of 1") and lines[2:] == ["exit 3"], log


def test_maps_counts_what_the_kernel_counts(made, bundled):
    # The container's PID 1, a sleep, is counted by guard inside and by the host outside. Under
    # QEMU the sleep is an arm64 program translated inside an x86-64 process: the kernel counts
    # (and vm.max_map_count limits) QEMU's mappings and its code cache as well as the guest's, and
    # that is what guard, emulated too, reads: QEMU passes the open of another process's
    # /proc/PID/maps to the kernel (and guard falls back to text, as QEMU has no PROCMAP_QUERY).
    # Equal means equal, then, as on amd64. QEMU answers only a process's own maps itself, with
    # the guest's mappings alone, and only when opened by the path /proc/self/maps or
    # /proc/<own pid>/maps (is_proc_myself in its linux-user/syscall.c): the scan opens "PID/maps"
    # relative to /proc, so guard's line for itself is the kernel's too (a check measured 85 for
    # it, as for a guard --watch at PID 1 read from the host). Its pid is gone by the time the
    # host could read it: that line is only checked to be there.
    container = run(made, bundled, ["sleep", "1000"])
    container.reload()
    host_pid = container.attrs["State"]["Pid"]
    with host_settings_unchanged():  # the limit in the report is the one read here
        for _ in range(5):  # a count taken while the sleep still maps (QEMU starting) is taken again
            before = kernel_count(host_pid)
            status, (out, err) = container.exec_run([GUARD, "maps", "--format", "json"], demux=True)
            after = kernel_count(host_pid)
            if before == after:
                break
            time.sleep(0.2)
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
    assert status == 0 and not err, (out, err)
    report = json.loads(out)
    assert report["max_map_count"] == limit
    [sleep] = [p for p in report["processes"] if p["pid"] == 1]
    assert (sleep["name"], sleep["maps"]) == ("sleep", before), (before, after, report)
    assert before == after
    [me] = [p for p in report["processes"] if p["name"] == "guard"]
    assert me["maps"] > 0, report


def test_profiles_and_version_answer(made, bundled):
    status, out = finish(run(made, bundled, [GUARD, "profiles"]))
    assert status == 0, out
    assert "elasticsearch: Elasticsearch bootstrap checks" in out
    status, out = finish(run(made, bundled, [GUARD, "--version"]))
    assert (status, out.split()[0]) == (0, "guard"), out



# TZ names the file glibc's tzset() opens at Python's start (/etc/localtime when unset): a FIFO
# held guard before its first line, /dev/stdin read the program's input away. The program gets
# TZ as given.
TIME_ZONE_FILES = """
mkfifo /run/guard/tz
TZ=/run/guard/tz timeout 10 /opt/guard/bin/guard --profile none -- echo started; echo "exit $?"
echo its input | TZ=/dev/stdin /opt/guard/bin/guard --profile none -- cat
echo its input | TZ=:/dev/stdin /opt/guard/bin/guard --profile none -- cat
TZ=Europe/Berlin /opt/guard/bin/guard --profile none -- sh -c 'echo "TZ=$TZ"'
"""


def test_no_time_zone_file_is_opened_and_the_program_gets_tz_as_given(made, bundled):
    status, out = finish(run(made, bundled, ["sh", "-c", TIME_ZONE_FILES]), timeout=60)
    assert out.splitlines() == ["started", "exit 0", "its input", "its input", "TZ=Europe/Berlin"], out


def test_a_bundle_without_a_library_it_needs_is_not_kept(made):
    # make_bundle.py copies the libraries ldd names. Were one missing from the folder, the build
    # image would still lend it from its own /lib, and a check run there would pass: the folder
    # is checked where it has nothing else, and the build fails naming what is missing.
    base = made.build("base-ldd-without-libffi", os.path.join(IMAGES, "ldd-without-libffi"), BASE_IMAGE=BASE_IMAGE)
    log = made.build_failing("bundle-without-libffi", REPO, target="bundle", BASE=base)
    assert "libffi.so.8: cannot open shared object file" in log, log[-3000:]


MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"  # Debian's musl, at the path Alpine gives it


@pytest.fixture(scope="session")
def alpine_like_image(made, bundle_image, tmp_path_factory):
    """musl as the libc, a musl program and a musl library to preload, with the bundle copied in."""
    source = os.path.join(IMAGES, "musl")
    context = tmp_path_factory.mktemp("musl")
    shutil.copy(os.path.join(source, "Dockerfile"), context)
    shutil.copy(os.path.realpath(MUSL_LOADER), context / "ld-musl-x86_64.so.1")
    for command in (["musl-gcc", "-O2", "-o", context / "program", os.path.join(source, "program.c")],
                    ["musl-gcc", "-O2", "-shared", "-fPIC", "-o", context / "libpreloaded.so",
                     os.path.join(source, "preloaded.c")]):
        subprocess.run(command, check=True)
    return made.build("alpine-like", str(context), BUNDLE_IMAGE=bundle_image, TARGET_IMAGE=NO_LIBC_IMAGE)


def test_the_images_ld_preload_reaches_the_program_and_does_not_break_guard(made, alpine_like_image):
    # A musl library loaded into the bundle's glibc would kill guard before its first line
    # (the control below): bin/guard starts guard's Python without LD_* and hands the program
    # the environment as it came.
    env = {"LD_PRELOAD": "/usr/lib/libpreloaded.so"}
    status, log = finish(made.container(alpine_like_image, [GUARD, "--profile", "none", "--", "/usr/bin/program"],
                                        environment=env))
    assert status == 0, log
    assert "program started with LD_PRELOAD=/usr/lib/libpreloaded.so" in log
    assert "musl library preloaded" in log  # by the program's own loader
    status, log = finish(made.container(alpine_like_image, ["/opt/guard/libexec/guard", "--version"],
                                        environment=env))
    assert status == 127 and "error while loading shared libraries" in log, log


def test_a_variable_naming_a_descriptor_is_the_users_own_when_no_memfd_can_be_made(made, alpine_like_image, tmp_path):
    # A seccomp filter that refuses memfd_create: bin/guard then passes the environment on as it
    # came, and the launcher must not read whatever descriptor GUARD_BUNDLE_ENVIRON_FD names
    # (here an open file): only a memfd sealed as bin/guard seals it counts.
    profile = tmp_path / "no-memfd.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                   "syscalls": [{"names": ["memfd_create"], "action": "SCMP_ACT_ERRNO"}]}))
    script = ("printf 'FORGED=1\\0' > /tmp/forged; exec 3</tmp/forged; "
              "exec /opt/guard/bin/guard --profile none -- /bin/sh -c 'cat /proc/self/environ | tr \"\\0\" \"\\n\"'")
    env = {"GUARD_BUNDLE_ENVIRON_FD": "3", "LD_BIND_NOW": "1"}
    status, log = finish(made.container(alpine_like_image, ["sh", "-c", script], environment=env,
                                        tmpfs={"/tmp": ""}, security_opt=[f"seccomp={profile.read_text()}"]))
    assert status == 0, log
    received = log.split()
    assert "GUARD_BUNDLE_ENVIRON_FD=3" in received and "LD_BIND_NOW=1" in received, log
    assert "FORGED=1" not in received, log


@pytest.fixture(scope="session")
def foreign_nss_image(made, bundle_image, tmp_path_factory):
    """An image whose nsswitch.conf puts a module of its own first for host names."""
    source = os.path.join(IMAGES, "nss")
    context = tmp_path_factory.mktemp("nss")
    shutil.copy(os.path.join(source, "Dockerfile"), context)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", context / "libnss_foreign.so.2",
                    os.path.join(source, "foreign.c")], check=True)
    return made.build("foreign-nss", str(context), BUNDLE_IMAGE=bundle_image, TARGET_IMAGE=NO_PYTHON_IMAGE)


def test_a_host_name_is_looked_up_without_the_images_name_service_modules(made, foreign_nss_image, tmp_path):
    # Elasticsearch's network.host names a host of /etc/hosts. glibc would load the image's
    # libnss_foreign.so.2, built for the image's libc, into the bundle's and ask it first; it
    # aborts. guard resolves the name with the bundle's own files and dns sources alone.
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n127.0.0.2 es-node\n")
    (tmp_path / "elasticsearch.yml").write_text("network.host: es-node\n")
    options = {"tmpfs": {"/tmp": ""}, "environment": {"ES_PATH_CONF": "/conf"},
               "volumes": {str(tmp_path / "hosts"): {"bind": "/etc/hosts", "mode": "ro"},
                           str(tmp_path): {"bind": "/conf", "mode": "ro"}}}
    mark = "ls /tmp/nss-foreign-loaded 2>/dev/null"
    # The control: the image's own programs do load the module, and die of it.
    status, log = finish(made.container(foreign_nss_image, ["sh", "-c", f"getent hosts es-node; {mark}"], **options))
    assert "/tmp/nss-foreign-loaded" in log, log
    status, log = finish(made.container(foreign_nss_image, ["sh", "-c", f"{GUARD} check --profile elasticsearch; "
                                                            f"echo exit $?; {mark}"], **options))
    assert "bound and published on loopback only (network.host [es-node] = 127.0.0.2)" in log, log
    assert "exit 0" in log and "/tmp/nss-foreign-loaded" not in log, log


def test_a_fifo_for_nsswitch_conf_holds_neither_the_start_nor_a_lookup(made, foreign_nss_image, tmp_path):
    # glibc opens /etc/nsswitch.conf before the bundle's own sources replace its lines: a FIFO
    # there would hold guard before its first line. The launcher leaves it alone, and guard then
    # looks up no name (a lookup would open it, and load the image's modules).
    (tmp_path / "elasticsearch.yml").write_text("network.host: es-node\n")
    script = (f"rm /etc/nsswitch.conf && mkfifo /etc/nsswitch.conf && {GUARD} check --profile elasticsearch; "
              "echo exit $?; ls /tmp/nss-foreign-loaded 2>/dev/null")
    container = made.container(foreign_nss_image, ["sh", "-c", script], tmpfs={"/tmp": ""},
                               environment={"ES_PATH_CONF": "/conf"}, ulimits=[docker.types.Ulimit(
                                   name="nofile", soft=1024, hard=1024)],
                               volumes={str(tmp_path): {"bind": "/conf", "mode": "ro"}})
    status, log = finish(container, timeout=30)
    assert ("production mode ([es-node] was not looked up: /etc/nsswitch.conf is a FIFO or pipe, not a regular "
            "file: not read") in log, log
    assert "exit 78" in log and "/tmp/nss-foreign-loaded" not in log, log


@pytest.mark.parametrize("arch", ARCHES)
def test_maps_user_without_seccomp_filters_becomes_no_one_and_says_why(request, made, arch):
    # A kernel without seccomp filters, or an emulator: guard cannot keep CAP_SYS_PTRACE to the
    # maps, so it does not switch at all. amd64: a profile of the engine answers seccomp(2) with
    # ENOSYS. arm64 here: QEMU's user mode itself implements no seccomp (ENOSYS from Debian 12's
    # 7.2), under the engine's default profile. The audit container's settings otherwise.
    security = ["no-new-privileges:true"]
    if arch == "amd64":
        profile = {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["seccomp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
        security.append(f"seccomp={json.dumps(profile)}")
    container = made.container(request.getfixturevalue(ARCHES[arch].bundle_fixture),
                               ["maps", "--user", "43210:43210", "1"], user="0", cap_drop=["ALL"],
                               cap_add=["SYS_PTRACE", "SETUID", "SETGID"], security_opt=security)
    assert finish(container) == (2, (
        "guard: --user [43210:43210]: system calls that reach into other processes cannot be refused (seccomp: "
        "Function not implemented): guard maps --user needs seccomp filters, which Linux has on x86-64 and arm64 "
        "(CONFIG_SECCOMP_FILTER)\n"))
