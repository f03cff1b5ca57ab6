"""ScyllaDB: what Seastar and scylla check at start, per shard.

Seastar reserves its Linux AIO control blocks per shard when it starts, and throws when the
kernel has too few left: fatal even in developer mode, the Docker image's default. Scylla itself
refuses a low open files limit, unless in developer mode.
"""

import os

from guard import config, host
from guard.checks import Requirement, decimal_number
from guard.host import Unreadable
from guard.profiles import SCYLLA_IMAGE_ENTRYPOINT
from guard.profiles.plan import Plan, last_option

# scylladb/seastar src/core/reactor.cc smp::adjust_max_networking_aio_io_control_blocks: per shard,
# the storage queues' reactor::max_aio (128 x 8), 2 for preemption, and the networking ones
# (--max-networking-io-control-blocks); across shards, --reserve-io-control-blocks once. Below
# what the storage, preemption and reserve need plus one networking block per shard it throws
# "Your system does not satisfy minimum AIO requirements. Set /proc/sys/fs/aio-max-nr to at
# least {} (minimum) or {} (recommended for networking performance)."; between that and the
# whole, it warns and shrinks the networking blocks. Both count from what is in use (fs.aio-nr).
SEASTAR_STORAGE_IOCBS = 128 * 8
SEASTAR_PREEMPT_IOCBS = 2
SEASTAR_LEAST_NETWORK_IOCBS = 1
# scylladb main.cc: linux-aio is the backend ScyllaDB picks (it refuses io_uring), with 50000
# networking blocks per shard, and 10 in reserve for its tools, or 1024 where io_uring is not
# available to them (they fall back to epoll, which needs more).
SCYLLA_BACKEND = "linux-aio"
SCYLLA_NETWORK_IOCBS = 50000
SCYLLA_RESERVE_IOCBS, SCYLLA_RESERVE_IOCBS_WITHOUT_URING = 10, 1024
# main.cc adjust_and_verify_rlimit: the soft limit raised to the hard one, then "NOFILE rlimit too
# low (recommended setting 200000, minimum setting 10000; refusing to start." below the minimum,
# a warning in developer mode.
SCYLLA_FILES, SCYLLA_FILES_RECOMMENDED = 10000, 200000
SCYLLA_CONF = "/etc/scylla"  # SCYLLA_CONF in the packages' /etc/sysconfig/scylla-server
TRUE_WORDS = ("1", "true", "yes", "on")  # boost::program_options, for --developer-mode
# yaml-cpp's convert<bool>, for scylla.yaml: these words in lower, UPPER or Capitalized case.
YAML_CPP_BOOLEANS = {variant: truth for words, truth in ((("y", "yes", "true", "on"), True),
                                                          (("n", "no", "false", "off"), False))
                     for word in words for variant in (word, word.upper(), word.capitalize())}


# Seastar reads --smp and each CPU of --cpuset as an unsigned (boost lexical_cast): more is refused.
UNSIGNED_MAX = (1 << 32) - 1


def cpuset_ranges(text):
    """The (first, last) CPU ranges of a cpuset(7) list as Seastar reads it (resource.cc
    parse_cpuset: N or N-M, joined by commas, no spaces, N <= M), merged; None when it is not one."""
    ranges = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = decimal_number(first, 0, UNSIGNED_MAX), decimal_number(last or first, 0, UNSIGNED_MAX)
        if not first.isdigit() or not (last or first).isdigit() or low is None or high is None or low > high:
            return None
        ranges.append((low, high))
    merged = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def cpuset_size(text):
    """The CPUs a cpuset(7) list names (0-3,5 -> 5), or None when it is not one: counted from its
    ranges, not listed (0-4294967295 names four billion)."""
    ranges = cpuset_ranges(text)
    return None if ranges is None else _cpus_in(ranges)


def _cpus_in(ranges):
    return sum(high - low + 1 for low, high in ranges)


def shards(args, notes):
    """Seastar's shard count (reactor.cc smp::configure): --smp, else the CPUs of --cpuset, else
    the CPUs the process may run on (posix.cc get_current_cpuset: its affinity mask; a CPU quota
    does not count), which guard, exec'ing the program, shares."""
    smp = last_option(args, "--smp")
    if smp is not None:
        count = decimal_number(smp, 1, UNSIGNED_MAX)
        if count is not None and smp.isdigit():
            return count, f"--smp [{smp}]"
        notes.append(f"--smp [{smp}] is not a whole number from [1] to [{UNSIGNED_MAX}]: scylla refuses it; "
                     "counted the CPUs instead")
    cpus = os.sched_getaffinity(0)
    cpuset = last_option(args, "--cpuset")
    if cpuset is not None:
        ranges = cpuset_ranges(cpuset)
        if ranges:
            # reactor.cc smp::configure: "Bad value for --cpuset: N not allowed. Shutting down."
            outside = sum(high - low + 1 - sum(low <= cpu <= high for cpu in cpus) for low, high in ranges)
            if outside:
                notes.append(f"--cpuset [{cpuset}] names [{outside}] CPUs this process may not run on: Seastar "
                             "refuses them (\"Bad value for --cpuset\")")
            return _cpus_in(ranges), f"--cpuset [{cpuset}]"
        notes.append(f"--cpuset [{cpuset}] is not a cpuset(7) list guard reads; counted the CPUs instead")
    return len(cpus), f"the [{len(cpus)}] CPUs this process may run on"


def _number_option(args, name, default, notes):
    value = last_option(args, name)
    if value is None:
        return default
    number = decimal_number(value, 0, UNSIGNED_MAX)
    if number is not None and value.isdigit():
        return number
    notes.append(f"{name} [{value}] is not a whole number from [0] to [{UNSIGNED_MAX}]: scylla refuses it; judged "
                 f"on the default [{default}]")
    return default


def _uring_unavailable():
    """Whether io_uring is off for every process (kernel.io_uring_disabled 2, Linux 6.6): then
    ScyllaDB keeps 1024 blocks in reserve. A seccomp profile that blocks it cannot be seen."""
    try:
        return host.read_sysctl("kernel.io_uring_disabled") == "2"
    except Unreadable:
        return False


def developer_mode(invocation, args, notes):
    """(developer mode, None when unknown, why): the image entrypoint's --developer-mode (default 1, written to
    /etc/scylla.d/dev-mode.conf as --developer-mode=1; with 0 the file is emptied); scylla's own
    --developer-mode; else developer_mode in scylla.yaml (db/config.cc, false in release builds)."""
    in_image = bool(invocation.argv) and os.path.basename(invocation.argv[0]) == os.path.basename(
        SCYLLA_IMAGE_ENTRYPOINT)
    given = last_option(args, "--developer-mode")
    if in_image and given != "0":
        return True, (f"--developer-mode [{given}]" if given else "the image's entrypoint defaults to "
                      "--developer-mode 1")
    if not in_image and given is not None:
        return given.lower() in TRUE_WORDS, f"--developer-mode [{given}]"
    env = invocation.environ
    conf = env.get("SCYLLA_CONF") or (os.path.join(env["SCYLLA_HOME"], "conf") if env.get("SCYLLA_HOME") else
                                      SCYLLA_CONF)
    path = last_option(args, "--options-file") or os.path.join(conf, "scylla.yaml")
    data, file_notes = config.read_file(path, "scylla.yaml", named=path != os.path.join(SCYLLA_CONF, "scylla.yaml"))
    notes += file_notes
    # There but not read here (a FIFO, no permission), it may say either; missing, scylla stops.
    if data is None and os.path.lexists(path):
        return None, f"{path} not read"
    try:
        pairs = config.yaml_top_level(data) if data is not None else []
    except config.Unparsable as e:
        notes.append(f"scylla.yaml [{path}] cannot be used: {e}; scylla refuses it too (\"Could not read "
                     f"configuration file\"); {config.WITHOUT}")
        pairs = []
    # utils/config_file.cc read_from_yaml: each developer_mode line in turn, a null one skipped, one
    # that is no yaml-cpp boolean logged and skipped: the value before it stays.
    value = None
    for key, text in pairs:
        if key != "developer_mode" or text is None:
            continue
        if text in YAML_CPP_BOOLEANS:
            value = text
        else:
            notes.append(f"developer_mode [{text}] in {path} is not a boolean scylla reads: it logs it and keeps "
                         f"[{value or 'false'}]")
    if value is None:
        return False, "developer mode off"
    return YAML_CPP_BOOLEANS[value], f"developer_mode [{value}] in {path}"


def scylladb_plan(invocation):
    args, notes = list(invocation.argv[1:]), []
    dev, why = developer_mode(invocation, args, notes)
    notes.append(f"developer mode ({why}): the open files minimum is a warning" if dev else
                 f"production mode ({why}): the open files minimum refuses" if dev is False else
                 f"developer mode unknown ({why}): the open files minimum is a warning")
    reqs = []
    backend = last_option(args, "--reactor-backend") or SCYLLA_BACKEND
    if backend == SCYLLA_BACKEND:
        reqs += aio_requirements(args, notes)
    else:
        notes.append(f"--reactor-backend [{backend}]: Seastar reserves no AIO control blocks, the aio-max-nr "
                     "checks are dropped")
    reqs += [
        Requirement("nofile.hard", ">=", SCYLLA_FILES, dev is False, name="open-files",
                    source="ScyllaDB main.cc adjust_and_verify_rlimit: minimum 10000",
                    hint="ScyllaDB says: \"NOFILE rlimit too low (recommended setting 200000, minimum setting "
                         "10000; refusing to start.\""),
        Requirement("nofile.hard", ">=", SCYLLA_FILES_RECOMMENDED, False, name="open-files-recommended",
                    source="ScyllaDB main.cc adjust_and_verify_rlimit: recommended 200000"),
        Requirement("net.ipv4.tcp_syncookies", "!=", 0, False,
                    source="ScyllaDB main.cc tcp_syncookies_sanity: \"sysctl entry net.ipv4.tcp_syncookies is set "
                           "to 0\"", hint="ScyllaDB advises net.ipv4.tcp_syncookies=1."),
        Requirement("net.ipv4.tcp_timestamps", "!=", 0, False,
                    source="ScyllaDB main.cc tcp_timestamps_sanity: \"sysctl entry net.ipv4.tcp_timestamps is set "
                           "to 0\"", hint="ScyllaDB advises net.ipv4.tcp_timestamps=1."),
    ]
    return Plan(reqs, notes)


def aio_requirements(args, notes):
    """fs.aio-max-nr as Seastar counts it for this many shards, from what is in use now."""
    count, counted = shards(args, notes)
    uring_off = _uring_unavailable()
    default_reserve = SCYLLA_RESERVE_IOCBS_WITHOUT_URING if uring_off else SCYLLA_RESERVE_IOCBS
    reserve = _number_option(args, "--reserve-io-control-blocks", default_reserve, notes)
    network = _number_option(args, "--max-networking-io-control-blocks", SCYLLA_NETWORK_IOCBS, notes)
    try:
        in_use, used = int(host.read_sysctl("fs.aio-nr")), "fs.aio-nr"
    except (Unreadable, ValueError) as e:
        in_use, used = 0, "0, the least fs.aio-nr can be"
        notes.append(f"fs.aio-nr unreadable ({e}): counted from 0, so the minimum may be more than shown")
    per_shard = SEASTAR_STORAGE_IOCBS + SEASTAR_PREEMPT_IOCBS
    least = in_use + reserve + (per_shard + SEASTAR_LEAST_NETWORK_IOCBS) * count
    advised = in_use + reserve + (per_shard + network) * count
    notes.append(f"[{count}] shards ({counted}); [{in_use}] AIO control blocks in use ({used}), "
                 f"[{reserve}] in reserve" + (" (io_uring is disabled: kernel.io_uring_disabled 2)" if uring_off
                                             else ""))
    source = (f"Seastar reactor.cc adjust_max_networking_aio_io_control_blocks: aio-nr [{in_use}] + reserve "
              f"[{reserve}] + ")
    return [
        Requirement("fs.aio-max-nr", ">=", least, True, name="aio-max-nr",
                    source=source + f"1027 x [{count}] shards",
                    hint=f"Below this ScyllaDB refuses to start, in developer mode too: \"Your system does not satisfy "
                         f"minimum AIO requirements. Set /proc/sys/fs/aio-max-nr to at least {least} (minimum) or "
                         f"{advised} (recommended for networking performance).\""),
        Requirement("fs.aio-max-nr", ">=", advised, False, name="aio-max-nr-recommended",
                    source=source + f"(1026 + [{network}] networking) x [{count}] shards"),
    ]
