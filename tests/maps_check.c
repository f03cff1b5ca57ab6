/* Drives csrc/maps.c through every path for tests/test_maps_c.py, built with a sanitizer or run
 * under valgrind: `maps_check PROC_ROOT CRAFTED_ROOT`. Exit 0 when every check holds. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "maps.h"

static int failures;

static void check(int ok, const char *what, long got)
{
    if (!ok) {
        fprintf(stderr, "maps_check: %s (got %ld)\n", what, got);
        failures++;
    }
}

/* Scans root with each mode and thread count; all must agree on the number of entries. */
static void scan_all_ways(const char *root)
{
    struct guard_maps_entry small[2];
    long found = guard_maps_scan(root, small, 2, GUARD_MAPS_AUTO, 0);
    check(found > 2, "a scan with too little room says how much it needs", found);
    unsigned long capacity = (unsigned long)found + 64;
    struct guard_maps_entry *entries = calloc(capacity, sizeof(*entries));
    for (int mode = GUARD_MAPS_AUTO; mode <= GUARD_MAPS_IOCTL; mode++)
        for (int threads = 1; threads <= 2; threads++) {
            long n = guard_maps_scan(root, entries, capacity, mode, threads);
            check(n > 0 && (unsigned long)n <= capacity, "scan counts the processes", n);
        }
    free(entries);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long self[3];
    for (int mode = GUARD_MAPS_AUTO; mode <= GUARD_MAPS_IOCTL; mode++)
        self[mode] = guard_maps_count(argv[1], getpid(), mode);
    check(self[0] > 0 && self[0] == self[1] && self[1] == self[2], "own count on every path", self[0]);
    check(guard_maps_count(argv[1], getpid(), 7) < 0, "an unknown mode is refused", 0);
    check(guard_maps_count(argv[1], -1, GUARD_MAPS_AUTO) < 0, "no process -1", 0);
    check(guard_maps_scan("/nonexistent", NULL, 0, GUARD_MAPS_AUTO, 0) < 0, "no proc root", 0);
    scan_all_ways(argv[1]);
    scan_all_ways(argv[2]);
    if (failures == 0)
        printf("maps_check: ok\n");
    return failures != 0;
}
