"""Kafka brokers: file descriptors, and two memory maps per log segment."""

import math
import os

from guard import config
from guard.checks import Requirement
from guard.profiles.plan import Plan

# apache/kafka docs/ops.html, "File descriptors and mmap": at least 100000 descriptors as a
# starting point; each log segment maps its .index and .timeindex, so 2 map areas per segment.
KAFKA_FILE_DESCRIPTORS = 100000
KAFKA_MAPS_PER_SEGMENT = 2
# Without segments to count guard asks for the figure Elasticsearch requires, a common floor for
# JVM services that mmap their data; a warning only, since Kafka starts and fails later.
KAFKA_DEFAULT_MAP_COUNT = 1 << 18
# The broker's JVM maps a few thousand areas of its own (heap, code cache, libraries, thread
# stacks), and segments keep coming: ask for half as much again as what is on disk needs now.
KAFKA_JVM_MAPS = 4096
KAFKA_HEADROOM = 1.5
KAFKA_DEFAULT_LOG_DIRS = "/tmp/kafka-logs"  # KafkaConfig log.dirs default


def kafka_settings(invocation):
    """server.properties from the argument, then --override key=value, then KAFKA_* variables."""
    args = [a for a in invocation.argv[1:] if a != "-daemon"]
    settings = {}
    if args and not args[0].startswith("-"):
        settings.update(config.read_properties(args[0]))
    for i, arg in enumerate(args):
        if arg == "--override" and i + 1 < len(args):
            key, sep, value = args[i + 1].partition("=")
            if sep:
                settings[key] = value
    for name in ("KAFKA_LOG_DIRS", "KAFKA_CFG_LOG_DIRS"):  # apache/kafka and Bitnami images
        if invocation.environ.get(name):
            settings["log.dirs"] = invocation.environ[name]
    return settings


def count_segments(log_dirs):
    """Segments (.log files) in the partition folders of the log dirs, or None when a log dir or
    a partition in it cannot be listed: a partial count would understate what the broker maps."""
    total = 0
    try:
        for log_dir in log_dirs:
            with os.scandir(log_dir) as partitions:
                for partition in partitions:
                    if partition.is_dir():
                        with os.scandir(partition.path) as files:
                            total += sum(1 for f in files if f.name.endswith(".log"))
    except OSError:
        return None
    return total


def kafka_maps_needed(segments):
    need = (KAFKA_MAPS_PER_SEGMENT * segments + KAFKA_JVM_MAPS) * KAFKA_HEADROOM
    return int(math.ceil(need / 1024.0) * 1024)


def kafka_plan(invocation):
    settings = kafka_settings(invocation)
    dirs_text = settings.get("log.dirs") or settings.get("log.dir") or KAFKA_DEFAULT_LOG_DIRS
    log_dirs = [d.strip() for d in dirs_text.split(",") if d.strip()]
    segments = count_segments(log_dirs)
    fds = Requirement("nofile.hard", ">=", KAFKA_FILE_DESCRIPTORS, False, name="file-descriptors",
                      source="Kafka docs ops.html: at least 100000 file descriptors")
    if segments is None:
        maps = Requirement("vm.max_map_count", ">=", KAFKA_DEFAULT_MAP_COUNT, False,
                           source="guard default when log.dirs cannot be read (2 maps per segment, ops.html)")
        note = f"log.dirs [{dirs_text}] cannot be listed here: map requirement is the default, a warning"
    else:
        maps = Requirement("vm.max_map_count", ">=", kafka_maps_needed(segments), True,
                           source=f"{segments} segments in log.dirs x 2 maps (ops.html) + JVM, x1.5 headroom")
        note = f"log.dirs [{dirs_text}] holds {segments} segments"
    return Plan([maps, fds], [note])
