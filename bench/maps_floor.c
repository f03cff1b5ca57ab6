/* Bench-only references for bench_maps.py, not part of guard: the raw floor of reading a maps
 * file (read() and throw away), and a plain single-threaded C text scanner. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <emmintrin.h>

#define BUFFER 65536

/* Reads path to its end into a buffer and discards it: bytes read, or -errno. */
long bench_read_discard(const char *path)
{
    static char buf[BUFFER];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    long total = 0;
    ssize_t got;
    while ((got = read(fd, buf, sizeof(buf))) > 0)
        total += got;
    long rc = got < 0 ? -errno : total;
    close(fd);
    return rc;
}

/* Newlines of the file at dirfd/path (read() + SSE2 count): count, or -errno. */
static long text_lines_at(int dirfd, const char *path)
{
    static char buf[BUFFER];
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    long lines = 0;
    ssize_t got;
    const __m128i nl = _mm_set1_epi8('\n');
    while ((got = read(fd, buf, sizeof(buf))) > 0) {
        ssize_t i = 0;
        for (; i + 16 <= got; i += 16)
            lines += __builtin_popcount(_mm_movemask_epi8(
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(buf + i)), nl)));
        for (; i < got; i++)
            lines += buf[i] == '\n';
    }
    long rc = got < 0 ? -errno : lines;
    close(fd);
    return rc;
}

/* Lines of one maps file: count, or -errno. */
long bench_text_count(const char *path)
{
    return text_lines_at(AT_FDCWD, path);
}

/* Lines of every process's maps under root, one thread: the total, or -errno. */
long bench_text_scan(const char *root)
{
    DIR *dir = opendir(root);
    if (!dir)
        return -errno;
    long total = 0;
    struct dirent *d;
    char path[300];
    while ((d = readdir(dir)) != NULL) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "%s/maps", d->d_name);
        long lines = text_lines_at(dirfd(dir), path);
        total += lines > 0 ? lines : 0;
    }
    closedir(dir);
    return total;
}
