#!/usr/bin/env python3
"""Stands in for a Kafka broker loading its logs: map every segment's offset index and time
index, as Kafka's LogSegment does (2 map areas per segment). When the process reaches
vm.max_map_count, mmap fails with ENOMEM, which a broker reports as "Map failed".

usage: kafka-server-start.sh server.properties
"""

import ctypes
import errno
import glob
import mmap
import os
import sys

# mmap(2) itself: Python's mmap module keeps a duplicate descriptor per map, so the process
# would run out of descriptors before map areas. Kafka's AbstractIndex closes the file once it
# is mapped: one map area per index, no descriptor.
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
MAP_FAILED = ctypes.c_void_p(-1).value


def log_dirs(properties):
    with open(properties) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and key.strip() in ("log.dirs", "log.dir"):
                return [d.strip() for d in value.split(",") if d.strip()]
    return ["/tmp/kafka-logs"]  # Kafka's default log.dirs


def map_indexes(log_dir, maps):
    for path in sorted(glob.glob(os.path.join(log_dir, "*", "*.*index"))):
        with open(path, "rb") as f:
            address = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        if address == MAP_FAILED:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        maps.append(address)


def main():
    maps = []
    for log_dir in log_dirs(sys.argv[1]):
        try:
            map_indexes(log_dir, maps)
        except OSError as e:
            print(f"ERROR loading log dir {log_dir} after {len(maps)} maps: Map failed: "
                  f"[{errno.errorcode.get(e.errno, e.errno)}] {e.strerror}", file=sys.stderr)
            return 1
    print(f"mapped {len(maps)} index files", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
