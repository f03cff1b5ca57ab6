/* The map scanner: how many memory mappings (VMAs) a process has, the number the kernel compares
 * with vm.max_map_count (mm->map_count, checked in mm/mmap.c do_mmap()). Plain C, no Python:
 * every exported function returns a count (>= 0) or -errno.
 *
 * Two ways through /proc/PID/maps, measured in ../../shared/MAPS-BASELINES.md:
 *   text:  read() + newline count, 120-205 ns per anonymous VMA, ~600 ns per file-backed one
 *          (the kernel renders every line; d_path() for each path);
 *   ioctl: PROCMAP_QUERY (Linux 6.11), one call per VMA without names, 270-380 ns anonymous,
 *          410-450 ns file-backed.
 * AUTO picks per process, from what it has read so far:
 *   one process (guard_maps_count, usually the big one someone watches): text, page by page, and
 *     the rest goes to the ioctl walk, from the address where the text stopped, as soon as a page
 *     turns out mostly file-backed (long lines: the average line length tells, at no cost);
 *   a scan (guard_maps_scan, mostly small processes mapping libraries): the ioctl walk first,
 *     back to text when a sample after the executable's VMAs is mostly anonymous (from the start:
 *     seq_file text cannot resume at an address, so the sampled VMAs are read again).
 * Starting a scan with text would cost it ~10 % (a seq_file page per process), the sample would
 * cost one small anonymous process ~30 %: each entry point takes the prior that fits its usual
 * population (measured in bench/README.md). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "maps.h"

/* PROCMAP_QUERY from the kernel's include/uapi/linux/fs.h (6.11). Declared here because the
 * build's headers may be older; the layout is the kernel ABI, `size` tells it which version. */
struct procmap_query {
    uint64_t size;
    uint64_t query_flags;
    uint64_t query_addr;
    uint64_t vma_start;
    uint64_t vma_end;
    uint64_t vma_flags;
    uint64_t vma_page_size;
    uint64_t vma_offset;
    uint64_t inode;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint32_t vma_name_size;
    uint32_t build_id_size;
    uint64_t vma_name_addr;
    uint64_t build_id_addr;
};
#define MAPS_PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define MAPS_COVERING_OR_NEXT_VMA 0x10

/* seq_file hands out at most about a page per read() whatever is asked; room for that. */
#define TEXT_BUFFER 16384
/* A scan's ioctl walk samples this many VMAs after the executable's before it settles. */
#define SAMPLE_VMAS 16
/* walk_ioctl()'s word for "the sample says text is cheaper": below every -errno. */
#define PREFER_TEXT LONG_MIN
/* Break-even of the two paths is near 53 % anonymous VMAs. A line of an anonymous VMA is ~49
 * bytes; a named one is padded to column 73 (seq_pad() in show_map_vma()) before the name, a
 * path making it ~100 bytes: about 75 bytes a line on average at break-even. */
#define FILE_LINE_BYTES 75
/* Below this many processes a scan is not worth a second thread. */
#define THREAD_MIN_PIDS 64
#define MAX_THREADS 4

/* The last text line on x86-64: the vsyscall gate area, which is not in the mm (no VMA). */
static const char gate_line[] = "[vsyscall]\n";
#define GATE_LEN (sizeof(gate_line) - 1)

/* The text read so far: complete lines, whether the next chunk starts a line, the last bytes. */
struct text {
    long lines;
    int at_line_start;
    size_t tail_len;
    char tail[GATE_LEN];
};

/* Newlines in buf[0, n). */
static long count_newlines(const char *buf, size_t n)
{
    long count = 0;
    size_t i = 0;
#ifdef __SSE2__
    const __m128i nl = _mm_set1_epi8('\n');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + i));
        count += __builtin_popcount(_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)));
    }
#endif
    for (; i < n; i++)
        count += buf[i] == '\n';
    return count;
}

/* Keeps the last GATE_LEN bytes of all text read, a chunk may end inside the last line. */
static void keep_tail(struct text *t, const char *buf, size_t n)
{
    if (n >= GATE_LEN) {
        memcpy(t->tail, buf + n - GATE_LEN, GATE_LEN);
        t->tail_len = GATE_LEN;
        return;
    }
    size_t keep = t->tail_len + n > GATE_LEN ? GATE_LEN - n : t->tail_len;
    memmove(t->tail, t->tail + t->tail_len - keep, keep);
    memcpy(t->tail + keep, buf, n);
    t->tail_len = keep + n;
}

/* 1 if the text [start, end) ends with the gate line, else 0. */
static int ends_with_gate(const char *start, const char *end)
{
    return (size_t)(end - start) >= GATE_LEN && memcmp(end - GATE_LEN, gate_line, GATE_LEN) == 0;
}

/* The start of the last complete line of buf[0, n), or NULL when no line starts and ends in it. */
static const char *last_complete_line(const char *buf, size_t n, int at_line_start)
{
    const char *end = memrchr(buf, '\n', n);
    if (!end)
        return NULL;
    const char *prev = end > buf ? memrchr(buf, '\n', end - buf) : NULL;
    if (prev)
        return prev + 1;
    return at_line_start ? buf : NULL;
}

/* The end address of the VMA on a maps line ("start-end perms offset dev inode name"), or 0. */
static uint64_t line_end_address(const char *line, const char *stop)
{
    const char *p = memchr(line, '-', stop - line);
    uint64_t addr = 0;
    if (!p)
        return 0;
    for (p++; p < stop; p++) {
        char c = *p;
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0)
            break;
        addr = addr << 4 | (uint64_t)digit;
    }
    return addr;
}

/* Watches the start of an ioctl walk: after the executable's own VMAs (the leading file-backed
 * run), SAMPLE_VMAS of them tell whether the process is mostly anonymous memory. */
struct sample {
    int leading;
    int seen;
    int anonymous;
};

/* 1 once the sample is complete and mostly anonymous (text is cheaper from there), else 0. */
static int sample_says_text(struct sample *s, const struct procmap_query *q)
{
    int file = q->inode != 0;
    if (s->seen >= SAMPLE_VMAS || (s->leading = s->leading && file))
        return 0;
    s->seen++;
    s->anonymous += !file;
    return s->seen == SAMPLE_VMAS && 2 * s->anonymous > SAMPLE_VMAS;
}

/* 1 when an ioctl's -errno says it does not exist here: ENOTTY from kernels before 6.11, EINVAL,
 * and ENOSYS from QEMU's user-mode emulation as Debian 12 has it (7.2: an arm64 image on an
 * amd64 host, or the reverse), which answers so every ioctl it does not translate (ENOTTY since
 * the patch "linux-user: report ENOTTY for unknown ioctls", April 2023). */
static int no_such_ioctl(long rc)
{
    return rc == -ENOTTY || rc == -EINVAL || rc == -ENOSYS;
}

/* VMAs from addr up through PROCMAP_QUERY, no names asked: count or -errno (no_such_ioctl()
 * tells a missing ioctl), or PREFER_TEXT when a sample is given and says so. A process without
 * mm (kernel thread, zombie) gives ESRCH at once: 0, unless text already showed it has one
 * (had_mm), then ESRCH means it exited under us. */
static long walk_ioctl(int fd, uint64_t addr, int had_mm, struct sample *sample)
{
    struct procmap_query q;
    long count = 0;
    memset(&q, 0, sizeof(q));
    q.size = sizeof(q);
    q.query_flags = MAPS_COVERING_OR_NEXT_VMA;
    for (;;) {
        q.query_addr = addr;
        if (ioctl(fd, MAPS_PROCMAP_QUERY, &q) < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == ENOENT || (err == ESRCH && count == 0 && !had_mm))
                return count;
            return -err;
        }
        if (sample && sample_says_text(sample, &q))
            return PREFER_TEXT;
        count++;
        addr = q.vma_end;
    }
}

/* 1 when a chunk of text looks mostly file-backed (long lines: a path in most), else 0. */
static int mostly_files(size_t n, long lines)
{
    return (long)n > FILE_LINE_BYTES * lines;
}

/* VMAs of an open maps file read as text from its start: count or -errno. In AUTO mode the rest
 * goes to the ioctl walk once the text looks mostly file-backed (kernels without it: on as text). */
static long count_text(int fd, int mode)
{
    char buf[TEXT_BUFFER];
    struct text t = {.lines = 0, .at_line_start = 1, .tail_len = 0};
    for (;;) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return t.lines - ends_with_gate(t.tail, t.tail + t.tail_len);
        long lines = count_newlines(buf, got);
        const char *line;
        if (mode == GUARD_MAPS_AUTO && lines > 0 && mostly_files(got, lines)
            && (line = last_complete_line(buf, got, t.at_line_start)) != NULL) {
            const char *end = (const char *)memrchr(buf, '\n', got) + 1;
            long rest = walk_ioctl(fd, line_end_address(line, end), 1, NULL);
            if (rest >= 0)
                return t.lines + lines - ends_with_gate(line, end) + rest;
            if (!no_such_ioctl(rest))
                return rest;
            mode = GUARD_MAPS_TEXT;
        }
        t.lines += lines;
        t.at_line_start = buf[got - 1] == '\n';
        keep_tail(&t, buf, got);
    }
}

/* VMAs of an open maps file in a scan: the ioctl walk first, as most processes are small and map
 * mostly files; text when the sample after the executable is mostly anonymous (from the start:
 * the text cannot resume at an address) or the kernel has no PROCMAP_QUERY. Count or -errno. */
static long count_ioctl_first(int fd)
{
    struct sample sample = {.leading = 1, .seen = 0, .anonymous = 0};
    long count = walk_ioctl(fd, 0, 0, &sample);
    if (count == PREFER_TEXT || no_such_ioctl(count))
        return count_text(fd, GUARD_MAPS_AUTO);
    return count;
}

/* VMAs of an open /proc/PID/maps: count or -errno. */
static long count_fd(int fd, int mode)
{
    if (mode == GUARD_MAPS_IOCTL)
        return walk_ioctl(fd, 0, 0, NULL);
    if (mode == GUARD_MAPS_TEXT || mode == GUARD_MAPS_AUTO)
        return count_text(fd, mode);
    return -EINVAL;
}

/* A maps file opened for reading: the descriptor, or -errno. Only a regular file is read, as the
 * kernel's maps is: in a crafted proc root a FIFO would make open() wait for a writer (O_NONBLOCK
 * returns at once) and a device (/dev/zero) give text forever. Errors as systemd's
 * stat_verify_regular(): -EISDIR for a directory, -EBADFD for any other kind. */
static int open_maps(int dirfd, const char *path)
{
    struct stat st;
    int fd = openat(dirfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : S_ISDIR(st.st_mode) ? EISDIR : EBADFD;
    if (err == 0)
        return fd;
    close(fd);
    return -err;
}

/* VMAs of the process pid under proc_root: count or -errno (-ENOENT: no such process). */
long guard_maps_count(const char *proc_root, int pid, int mode)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%d/maps", proc_root, pid) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open_maps(AT_FDCWD, path);
    if (fd < 0)
        return fd;
    long count = count_fd(fd, mode);
    close(fd);
    return count;
}

/* A scan shared by its threads: each takes the next entry until none is left. */
struct scan {
    int dirfd;
    int mode;
    struct guard_maps_entry *entries;
    unsigned long n;
    unsigned long next;
};

/* Counts one entry in place; the errno goes into the entry, never out of it. */
static void count_entry(const struct scan *s, struct guard_maps_entry *e)
{
    char name[32];
    snprintf(name, sizeof(name), "%d/maps", e->pid);
    int fd = open_maps(s->dirfd, name);
    long count = fd < 0 ? fd : s->mode == GUARD_MAPS_AUTO ? count_ioctl_first(fd) : count_fd(fd, s->mode);
    if (fd >= 0)
        close(fd);
    e->count = count < 0 ? 0 : count;
    e->error = count < 0 ? (int)-count : 0;
}

/* Thread body: counts entries until the scan has none left; returns NULL. */
static void *scan_worker(void *arg)
{
    struct scan *s = arg;
    unsigned long i;
    while ((i = __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED)) < s->n)
        count_entry(s, &s->entries[i]);
    return NULL;
}

/* The pid a /proc entry names, or -1 for anything not all digits (self, sys, ...). */
static int entry_pid(const char *name)
{
    long pid = 0;
    if (!*name)
        return -1;
    for (; *name; name++) {
        if (*name < '0' || *name > '9' || pid > INT_MAX / 10)
            return -1;
        pid = pid * 10 + (*name - '0');
    }
    return pid <= INT_MAX ? (int)pid : -1;
}

/* Lists the numeric entries of dir into entries (at most capacity): how many there are. */
static unsigned long list_pids(DIR *dir, struct guard_maps_entry *entries, unsigned long capacity)
{
    unsigned long found = 0;
    struct dirent *d;
    while ((d = readdir(dir)) != NULL) {
        int pid = entry_pid(d->d_name);
        if (pid < 0)
            continue;
        if (found < capacity) {
            entries[found].pid = pid;
            entries[found].error = 0;
            entries[found].count = 0;
        }
        found++;
    }
    return found;
}

/* Threads for n pids: 0 asks for the default (the online CPUs, up to MAX_THREADS). */
static int thread_count(int asked, unsigned long n)
{
    if (asked > 0)
        return asked < MAX_THREADS ? asked : MAX_THREADS;
    if (n < THREAD_MIN_PIDS)
        return 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus < MAX_THREADS ? (int)cpus : MAX_THREADS;
}

/* Counts every process under proc_root into entries: the number of processes, or -errno when the
 * proc root cannot be listed. More processes than capacity: nothing counted, call again with
 * room for the number returned. Per-process errors go into each entry's error. */
long guard_maps_scan(const char *proc_root, struct guard_maps_entry *entries,
                     unsigned long capacity, int mode, int threads)
{
    DIR *dir = opendir(proc_root);
    if (!dir)
        return -errno;
    struct scan s = {.dirfd = dirfd(dir), .mode = mode, .entries = entries, .next = 0};
    s.n = list_pids(dir, entries, capacity);
    if (s.n <= capacity) {
        pthread_t helpers[MAX_THREADS - 1];
        int started = 0, wanted = thread_count(threads, s.n) - 1;
        while (started < wanted && pthread_create(&helpers[started], NULL, scan_worker, &s) == 0)
            started++;
        scan_worker(&s);
        while (started > 0)
            pthread_join(helpers[--started], NULL);
    }
    closedir(dir);
    return (long)s.n;
}
