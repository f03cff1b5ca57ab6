"""Kafka's map checks: hard at what the segments on disk take once read (2 per segment, with the
JVM's own maps), a warning at the headroom figure, and one fix that meets both."""

import json
import re

import pytest

from guard.profiles import kafka
from support import crafted_proc, run_guard, text
from test_profiles import make_segments

# guard check -- kafka-server-start.sh, judged on the maps alone (descriptors are a warning).
ONLY_MAPS = {"GUARD_SKIP": "file-descriptors", "GUARD_PLACE": "host"}


def check_kafka(tmp_path, host_value, segments_each, *args, partitions=10):
    logs = tmp_path / "logs"
    if not logs.exists():
        make_segments(logs, partitions, segments_each)
    env = {**ONLY_MAPS, "GUARD_PROCFS": crafted_proc(tmp_path / f"proc-{host_value}", {"vm.max_map_count": host_value})}
    return run_guard("check", *args, "--", "kafka-server-start.sh", "--override", f"log.dirs={logs}", env=env)


def test_the_hard_figure_is_two_maps_per_segment_and_the_jvms_own():
    assert kafka.kafka_maps_on_disk(0) == kafka.KAFKA_JVM_OWN_MAPS == 186
    assert kafka.kafka_maps_on_disk(30000) == 60186
    assert kafka.kafka_maps_needed(30000) == 96256  # the headroom figure guard refused with before


def test_thirty_thousand_segments_at_the_default_limit_start_with_a_warning(tmp_path):
    done = check_kafka(tmp_path, 65530, 3000)
    assert done.returncode == 0, text(done)
    lines = text(done).splitlines()
    assert "guard: pass  max-map-count           max virtual memory areas vm.max_map_count [65530] >= [60186]" in lines
    assert ("guard: [1] (warning) max virtual memory areas vm.max_map_count [65530] is too low, "
            "increase to at least [96256]") in lines
    assert "guard:     To fix this, run as root: sysctl -w vm.max_map_count=96256" in lines


@pytest.mark.parametrize("host_value,code,statuses", [
    (2 * 300 + 185, 78, ("fail", "warn")),
    (2 * 300 + 186, 0, ("pass", "warn")),
    (kafka.kafka_maps_needed(300) - 1, 0, ("pass", "warn")),
    (kafka.kafka_maps_needed(300), 0, ("pass", "pass")),
])
def test_below_at_and_above_each_threshold(tmp_path, host_value, code, statuses):
    done = check_kafka(tmp_path, host_value, 30, "--format", "json")
    assert done.returncode == code, text(done)
    found = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    on_disk, headroom = found["max-map-count"], found["max-map-count-headroom"]
    assert (on_disk["status"], headroom["status"]) == statuses
    assert (on_disk["required"], on_disk["hard"]) == (786, True)
    assert (headroom["required"], headroom["hard"]) == (kafka.kafka_maps_needed(300), False)
    assert "KAFKA-7283" in on_disk["source"] and "186 of the JVM's own" in on_disk["source"]


def test_a_refusal_prints_the_headroom_value_as_its_fix_and_no_other(tmp_path):
    done = check_kafka(tmp_path, 700, 30)
    assert done.returncode == 78
    out = text(done)
    assert ("guard: [1] max virtual memory areas vm.max_map_count [700] is too low, increase to at least [786]"
            in out.splitlines())
    need = kafka.kafka_maps_needed(300)
    assert set(re.findall(r"vm\.max_map_count=([0-9]+)", out)) == {str(need)}
    assert f"This sets [{need}], which max-map-count-headroom asks for: one change meets both." in out


def test_log_dirs_that_cannot_be_counted_say_so_in_plain_words(tmp_path):
    env = {**ONLY_MAPS, "GUARD_PROCFS": crafted_proc(tmp_path / "proc", {"vm.max_map_count": 65530})}
    missing = tmp_path / "not-there"
    done = run_guard("check", "--", "kafka-server-start.sh", "--override", f"log.dirs={missing}", env=env)
    assert done.returncode == 0, text(done)
    assert (f"guard: kafka: cannot count the segments in log.dirs [{missing}] (not there, or not readable here): "
            f"how many maps the broker will need is unknown, so below [{kafka.KAFKA_DEFAULT_MAP_COUNT}] guard "
            "only warns\n") in text(done)
