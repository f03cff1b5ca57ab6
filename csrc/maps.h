/* Counting the memory mappings (VMAs) of processes: what ffi.cdef() is given, nothing else. */

/* How the maps are read: AUTO picks per process (csrc/maps.c says how), the others force one path. */
#define GUARD_MAPS_AUTO 0
#define GUARD_MAPS_TEXT 1
#define GUARD_MAPS_IOCTL 2

/* One process of a whole-system scan: error is 0 and count the number of VMAs, or error is
   the errno that stopped the count (ENOENT or ESRCH: gone, EACCES: not ours to read). */
struct guard_maps_entry {
    int pid;
    int error;
    long count;
};

long guard_maps_count(const char *proc_root, int pid, int mode);
long guard_maps_scan(const char *proc_root, struct guard_maps_entry *entries,
                     unsigned long capacity, int mode, int threads);
