"""guard --watch as a container's PID 1: docker stop and docker kill reach the program, orphans are reaped."""

import time

from containers import exec_output, finish, wait_for_log, wait_for_process

# Prints each signal it gets on stdout (the container log); SIGTERM ends it with 0.
RECORD_SIGNALS = """
import signal, sys
def record(signum, frame):
    print("child got", signal.Signals(signum).name, flush=True)
    if signum == signal.SIGTERM:
        sys.exit(0)
for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM):
    signal.signal(s, record)
print("child ready", flush=True)
while True:
    signal.pause()
"""


def watch(*command):
    return ["--quiet", "--watch", "--interval", "0.2", "--", *command]


def test_docker_stop_ends_a_guarded_program_promptly_with_its_signal_code(made, guard_image):
    container = made.container(guard_image, watch("sleep", "1000"))
    wait_for_process(container, "sleep")
    assert exec_output(container, "cat", "/proc/1/comm") == (0, "guard"), "guard stays PID 1"
    # sleep keeps SIGTERM's default: it dies of it and guard exits 128 + 15. Without forwarding,
    # docker stop would wait its 10 s and SIGKILL guard (137).
    deadline = time.monotonic() + 5
    container.stop(timeout=10)
    assert finish(container)[0] == 143
    assert time.monotonic() < deadline, "docker stop had to wait for its timeout"


def test_docker_kill_hup_and_usr1_reach_the_program_and_stop_lets_it_exit_0(made, guard_image):
    container = made.container(guard_image, watch("python3", "-c", RECORD_SIGNALS))
    wait_for_log(container, "child ready")
    for name in ("SIGHUP", "SIGUSR1"):
        container.kill(signal=name)
        wait_for_log(container, f"child got {name}")
    container.stop(timeout=10)
    status, log = finish(container)
    assert status == 0, log
    assert "child got SIGTERM" in log


def test_orphaned_processes_are_reaped_by_guard_as_pid_1(made, guard_image):
    # The subshell starts the orphan and exits: the orphan is re-parented to PID 1 and, once it
    # ends, is a zombie until PID 1 waits for it.
    orphan = "sleep 0.2; echo orphan done"
    container = made.container(guard_image, watch("sh", "-c", f"(sh -c '{orphan}' &); exec sleep 1000"))
    wait_for_log(container, "orphan done")
    deadline = time.monotonic() + 10
    while True:
        code, zombies = exec_output(container, "sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status || true")
        if not zombies:
            break
        assert time.monotonic() < deadline, f"zombies left in the container: {zombies}"
        time.sleep(0.1)
    container.stop(timeout=10)
    assert finish(container)[0] == 143

