/* Holds memory mappings for tests/ and bench/ to count.
 *   vma_holder N anon        N anonymous mappings
 *   vma_holder N file PATH   N mappings of PATH (made sparse, N pages long)
 *   vma_holder fill          single pages until the kernel refuses: vm.max_map_count reached
 * Neighbouring mappings alternate PROT_READ and PROT_NONE so the kernel cannot merge them.
 * Prints "ready M" (M: mappings made), then holds them until stdin closes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* One region of n pages split into n mappings by protecting every other page: made or -1. */
static long split_region(long n, int fd)
{
    long page = sysconf(_SC_PAGESIZE);
    if (n == 0)
        return 0;
    if (fd >= 0 && ftruncate(fd, n * page) < 0)
        return -1;
    int flags = MAP_PRIVATE | MAP_NORESERVE | (fd < 0 ? MAP_ANONYMOUS : 0);
    char *base = mmap(NULL, n * page, PROT_READ, flags, fd, 0);
    if (base == MAP_FAILED)
        return -1;
    for (long i = 1; i < n; i += 2)
        if (mprotect(base + i * page, page, PROT_NONE) < 0)
            return -1;
    return n;
}

/* Single-page mappings until mmap() fails with ENOMEM: how many were made, or -1. */
static long fill(void)
{
    long page = sysconf(_SC_PAGESIZE), made = 0;
    for (;;) {
        int prot = made % 2 ? PROT_NONE : PROT_READ;
        if (mmap(NULL, page, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
            return errno == ENOMEM ? made : -1;
        made++;
    }
}

int main(int argc, char **argv)
{
    long made = -1;
    if (argc == 2 && strcmp(argv[1], "fill") == 0)
        made = fill();
    else if (argc == 3 && strcmp(argv[2], "anon") == 0)
        made = split_region(atol(argv[1]), -1);
    else if (argc == 4 && strcmp(argv[2], "file") == 0)
        made = split_region(atol(argv[1]), open(argv[3], O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (made < 0) {
        perror("vma_holder");
        return 1;
    }
    printf("ready %ld\n", made);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    return 0;
}
