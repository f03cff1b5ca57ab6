"""Kafka brokers: file descriptors, and two memory maps per log segment."""

import math
import os
import re

from guard import config
from guard.checks import Requirement
from guard.profiles import KAFKA_IMAGE_RUN
from guard.profiles.plan import Plan
from guard.records import record

# apache/kafka docs/ops.html, "File descriptors and mmap": at least 100000 descriptors as a
# starting point; each log segment maps its .index and .timeindex, so 2 map areas per segment,
# and a broker short of them dies with OutOfMemoryError (Map failed).
KAFKA_FILE_DESCRIPTORS = 100000
KAFKA_MAPS_PER_SEGMENT = 2
# Since KAFKA-7283 (JIRA fix version 2.3.0: LazyIndex) a segment's indexes are mapped when first
# read, not at start: after a clean shutdown only the active segments are. Fetches from older
# offsets and retention map the others over hours, and a map stays until its segment goes, so 2
# per segment on disk is where a broker ends up (and where one before 2.3 starts). Below that,
# failure is certain once the whole log has been read (a new follower, a consumer from the
# earliest offset): hard there, with the JVM's own maps. The JVM's own: OpenJDK 17.0.15 (Debian
# 12) started with kafka-server-start.sh's heap and kafka-run-class.sh's performance options,
# idle, counted with guard maps PID: 186 with 1 CPU, 190 with 32; each further thread adds 2
# (its stack and guard page). A broker runs many more threads, so this is a floor.
KAFKA_JVM_OWN_MAPS = 186
# Without segments to count guard asks for the figure Elasticsearch requires, a common floor for
# JVM services that mmap their data; a warning only, since Kafka starts and fails later.
KAFKA_DEFAULT_MAP_COUNT = 1 << 18
# Headroom, a warning: the broker's JVM maps a few thousand areas of its own once busy (heap,
# code cache, libraries, thread stacks), and segments keep coming: half as much again as what
# is on disk needs now.
KAFKA_JVM_MAPS = 4096
KAFKA_HEADROOM = 1.5
KAFKA_DEFAULT_LOG_DIRS = "/tmp/kafka-logs"  # KafkaConfig log.dirs default
# A partition's folder is TOPIC-PARTITION, with a .ID-delete, .ID-future or .ID-stray suffix
# while the broker deletes or moves it (core LocalLog DeleteDirPattern and friends); topic names
# are letters, digits, '.', '_' and '-' (common Topic.validate). Anything else in a log dir
# (lost+found on an ext4 volume, a backup) holds no log the broker maps.
KAFKA_PARTITION_DIR = re.compile(r"[A-Za-z0-9._-]+-[0-9]+(\.\S+-(delete|future|stray))?")


KAFKA_IMAGE_MOUNTED_PROPERTIES = "/mnt/shared/config/server.properties"
KAFKA_IMAGE_DEFAULT_PROPERTIES = "/etc/kafka/docker/server.properties"
KAFKA_IMAGE_LOG_DIRS = "/tmp/kraft-combined-logs"  # the default file's, when guard cannot read it
# Variables KafkaDockerWrapper leaves out of server.properties (ExcludeServerPropsEnv).
KAFKA_IMAGE_NOT_SETTINGS = frozenset((
    "KAFKA_VERSION", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME"))


def _image_setting_name(variable):
    """KAFKA_LOG_DIRS -> log.dirs, as KafkaDockerWrapper.getServerConfigsFromEnv names it: '_' a
    dot, '__' an underscore, '___' a dash."""
    name = variable.replace("KAFKA_", "").lower().replace("_", ".")
    return name.replace("...", "-").replace("..", "_")


def image_run_settings(invocation):
    """(settings, notes) of a broker the apache/kafka image's run script starts."""
    environ = dict(invocation.environ)
    for arg in invocation.argv[1:]:
        name, sep, value = arg.partition("=")
        if sep:
            environ[name] = value
    from_env = {_image_setting_name(name): value for name, value in environ.items()
                if name.startswith("KAFKA_") and name not in KAFKA_IMAGE_NOT_SETTINGS}
    settings, notes = {}, []
    if os.path.exists(KAFKA_IMAGE_MOUNTED_PROPERTIES):
        settings, notes = config.read_properties(KAFKA_IMAGE_MOUNTED_PROPERTIES, "server.properties")
    settings.update(from_env)
    if not settings and not notes:
        if os.path.exists(KAFKA_IMAGE_DEFAULT_PROPERTIES):
            settings, notes = config.read_properties(KAFKA_IMAGE_DEFAULT_PROPERTIES, "server.properties")
        else:  # a preflight container without the image's files
            settings = {"log.dirs": KAFKA_IMAGE_LOG_DIRS}
    return {key: value.strip() for key, value in settings.items()}, notes


def kafka_settings(invocation):
    """(settings, notes): server.properties from the argument, then --override key=value, then
    KAFKA_* variables; or what the apache/kafka image's run script makes of its variables."""
    if invocation.argv and invocation.argv[0] == KAFKA_IMAGE_RUN:
        return image_run_settings(invocation)
    args = [a for a in invocation.argv[1:] if a != "-daemon"]
    settings, notes = {}, []
    if args and not args[0].startswith("-"):
        settings, notes = config.read_properties(args[0], "server.properties")
        settings = {key: value.strip() for key, value in settings.items()}  # ConfigDef.parseType trims
    for i, arg in enumerate(args):
        if arg == "--override" and i + 1 < len(args):
            key, sep, value = args[i + 1].partition("=")
            if sep:
                settings[key] = value
    for name in ("KAFKA_LOG_DIRS", "KAFKA_CFG_LOG_DIRS"):  # apache/kafka and Bitnami images
        if invocation.environ.get(name):
            settings["log.dirs"] = invocation.environ[name]
    return settings, notes


Segments = record("Segments", "count partitions skipped")


def count_segments(log_dirs):
    """Segments (.log files) in the partition folders of the log dirs, how many partitions, and
    the folders skipped as not partitions; None when a log dir or a partition cannot be listed:
    a partial count would understate what the broker maps."""
    total, partitions, skipped = 0, 0, []
    try:
        for log_dir in log_dirs:
            with os.scandir(log_dir) as entries:
                folders = [e for e in entries if e.is_dir()]
            for folder in folders:
                if KAFKA_PARTITION_DIR.fullmatch(folder.name) is None:
                    skipped.append(folder.path)
                    continue
                with os.scandir(folder.path) as files:
                    total += sum(1 for f in files if f.name.endswith(".log"))
                partitions += 1
    except OSError:
        return None
    return Segments(total, partitions, skipped)


def kafka_maps_on_disk(segments):
    """The map areas a broker ends up with for the segments already on disk, with its JVM's."""
    return KAFKA_MAPS_PER_SEGMENT * segments + KAFKA_JVM_OWN_MAPS


def kafka_maps_needed(segments):
    """The maps to set aside: the segments on disk and a busy JVM, with headroom for new ones."""
    need = (KAFKA_MAPS_PER_SEGMENT * segments + KAFKA_JVM_MAPS) * KAFKA_HEADROOM
    return int(math.ceil(need / 1024.0) * 1024)


def kafka_plan(invocation):
    settings, notes = kafka_settings(invocation)
    dirs_text = settings.get("log.dirs") or settings.get("log.dir") or KAFKA_DEFAULT_LOG_DIRS
    log_dirs = [d.strip() for d in dirs_text.split(",") if d.strip()]
    found = count_segments(log_dirs)
    fds = Requirement("nofile.hard", ">=", KAFKA_FILE_DESCRIPTORS, False, name="file-descriptors",
                      source="Kafka docs ops.html: at least 100000 file descriptors")
    if found is None:
        maps = [Requirement("vm.max_map_count", ">=", KAFKA_DEFAULT_MAP_COUNT, False,
                            source="guard default when log.dirs cannot be read (2 maps per segment, ops.html)")]
        notes.insert(0, f"cannot count the segments in log.dirs [{dirs_text}] (not there, or not readable here): "
                        f"how many maps the broker will need is unknown, so below [{KAFKA_DEFAULT_MAP_COUNT}] "
                        "guard only warns")
    else:
        maps = [
            Requirement("vm.max_map_count", ">=", kafka_maps_on_disk(found.count), True,
                        source=f"{found.count} segments in log.dirs x 2 maps (ops.html, mapped as they are "
                               f"read since KAFKA-7283) + {KAFKA_JVM_OWN_MAPS} of the JVM's own (measured)"),
            Requirement("vm.max_map_count", ">=", kafka_maps_needed(found.count), False,
                        name="max-map-count-headroom",
                        source=f"({found.count} segments x 2 + {KAFKA_JVM_MAPS} for a busy JVM) x1.5 "
                               "headroom for segments to come"),
        ]
        notes.insert(0, f"log.dirs [{dirs_text}] holds {found.count} segments in {found.partitions} partitions")
        if found.skipped:
            notes.insert(1, f"not partitions, so not counted: {', '.join(found.skipped)}")
    return Plan(maps + [fds], notes)
