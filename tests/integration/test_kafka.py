"""A Kafka-like workload that maps 2 index files per log segment, with and without guard.

Without guard it starts and then dies with "Map failed" once the maps reach vm.max_map_count,
as a broker with many segments does; guard's kafka profile counts the segments in log.dirs
(server.properties given as the argument) and refuses up front with the fix.
"""

import os
import shutil
import tempfile

import pytest
from containers import EXIT_REFUSED, finish
from guard.profiles.kafka import kafka_maps_needed
from hostsettings import sysctl

DEFAULT_MAP_COUNT = 65530
# 2 maps per segment: 33000 segments need 66000 maps, just past the default limit.
MANY, FEW = 33000, 100
PARTITIONS = 100


def make_log_dirs(segments):
    """server.properties and log.dirs with the given number of segments, in 1-page sparse files."""
    root = tempfile.mkdtemp(prefix="guard-kafka-", dir="/var/tmp")
    os.chmod(root, 0o755)  # the container runs as guard's non-root user
    for n in range(segments):
        partition = os.path.join(root, "data", f"events-{n % PARTITIONS}")
        os.makedirs(partition, exist_ok=True)
        base = os.path.join(partition, f"{n // PARTITIONS * 1000:020d}")
        for suffix in (".log", ".index", ".timeindex"):
            with open(base + suffix, "wb") as f:
                f.truncate(4096 if suffix != ".log" else 0)
    with open(os.path.join(root, "server.properties"), "w") as f:
        f.write("broker.id=0\nlog.dirs=/kafka/data\n")
    return root


@pytest.fixture(scope="module")
def many_segments():
    root = make_log_dirs(MANY)
    yield root
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def few_segments():
    root = make_log_dirs(FEW)
    yield root
    shutil.rmtree(root)


def start_broker(made, image, root, through_guard=True):
    options = {"volumes": {root: {"bind": "/kafka", "mode": "ro"}}}
    command = ["kafka-server-start.sh", "/kafka/server.properties"]
    if not through_guard:
        options["entrypoint"] = command[:1]
        command = command[1:]
    return finish(made.container(image, command, **options), timeout=120)


def test_without_guard_the_workload_starts_and_fails_with_map_failed(made, workloads_image, many_segments):
    with sysctl("vm.max_map_count", DEFAULT_MAP_COUNT):
        status, log = start_broker(made, workloads_image, many_segments, through_guard=False)
    assert status == 1, log
    assert "Map failed: [ENOMEM]" in log


def test_guard_refuses_the_same_workload_up_front_with_the_fix(made, workloads_image, many_segments):
    need = kafka_maps_needed(MANY)
    with sysctl("vm.max_map_count", DEFAULT_MAP_COUNT):
        status, log = start_broker(made, workloads_image, many_segments)
    assert status == EXIT_REFUSED, log
    assert f"holds {MANY} segments" in log
    assert f"vm.max_map_count [{DEFAULT_MAP_COUNT}]" in log and f"[{need}]" in log
    assert f"sysctl -w vm.max_map_count={need}" in log
    assert "Map failed" not in log and "mapped" not in log


def test_with_the_host_raised_guard_starts_the_workload_and_it_maps_every_index(
        made, workloads_image, many_segments):
    with sysctl("vm.max_map_count", kafka_maps_needed(MANY)):
        status, log = start_broker(made, workloads_image, many_segments)
    assert status == 0, log
    assert f"mapped {2 * MANY} index files" in log


def test_few_segments_start_at_the_default_limit(made, workloads_image, few_segments):
    with sysctl("vm.max_map_count", DEFAULT_MAP_COUNT):
        status, log = start_broker(made, workloads_image, few_segments)
    assert status == 0, log
    assert f"mapped {2 * FEW} index files" in log
