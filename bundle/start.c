/*
 * /opt/guard/bin/guard in the bundle: a static program that starts the bundle's Python
 * (GUARD_PREFIX/libexec/guard, bundle/launcher.c) without the dynamic loader variables of the
 * image it was copied into.
 *
 * Why: the bundle's loader and libc are not the image's. A library the image names in
 * LD_PRELOAD (jemalloc is a common one in front of JVMs and Redis) is built for the image's libc;
 * loaded into guard it can fail (a symbol version newer than the bundle's glibc, a musl library)
 * and guard would die before its first line, with the program it guards. A static program is not
 * touched by LD_* variables (there is no loader to read them): this one leaves them out of the
 * environment the bundle's Python starts with, and hands guard the environment as it was received,
 * byte for byte (duplicates and entries without '=' included), in a memfd whose number it names in
 * GUARD_BUNDLE_ENVIRON_FD. guard gives that environment to the program. Without LD_* variables it
 * only execs. Reference: ld.so(8), "Environment"; memfd_create(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef GUARD_PREFIX
#define GUARD_PREFIX "/opt/guard"
#endif
#define PYTHON GUARD_PREFIX "/libexec/guard"
#define FD_VARIABLE "GUARD_BUNDLE_ENVIRON_FD"
#define MAX_FD_ENTRY (sizeof(FD_VARIABLE "=") + 12)
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* 1 when the entry must not reach the bundle's Python as it is: a variable the dynamic loader
 * reads (LD_PRELOAD, LD_LIBRARY_PATH, ...), or one naming the memfd, which only this program sets. */
static int hidden(const char *entry)
{
    return strncmp(entry, "LD_", 3) == 0 || strncmp(entry, FD_VARIABLE "=", sizeof(FD_VARIABLE)) == 0;
}

/* Writes all of len bytes; 0, or -1 with errno set. */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A sealed memfd above the standard descriptors (one of them may be closed) holding every entry
 * of envp followed by its NUL, offset back at 0; -1 when it cannot be made. The seals make it
 * immutable, and let the launcher tell it from any descriptor a forged variable could name. */
static int environ_memfd(char **envp)
{
    int fd = memfd_create("guard-environ", MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (fd <= STDERR_FILENO) {
        int moved = fcntl(fd, F_DUPFD, STDERR_FILENO + 1);
        close(fd);
        if (moved < 0)
            return -1;
        fd = moved;
    }
    for (char **entry = envp; *entry; entry++) {
        if (write_all(fd, *entry, strlen(*entry) + 1) < 0) {
            close(fd);
            return -1;
        }
    }
    if (fcntl(fd, F_ADD_SEALS, SEALS) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* envp without the hidden entries, plus GUARD_BUNDLE_ENVIRON_FD=fd; NULL without memory. */
static char **cleaned(char **envp, int fd, char *fd_entry)
{
    size_t count = 0, kept = 0;
    for (char **entry = envp; *entry; entry++)
        count++;
    char **out = calloc(count + 2, sizeof(char *));
    if (!out)
        return NULL;
    for (char **entry = envp; *entry; entry++)
        if (!hidden(*entry))
            out[kept++] = *entry;
    snprintf(fd_entry, MAX_FD_ENTRY, "%s=%d", FD_VARIABLE, fd);
    out[kept] = fd_entry;
    return out;
}

int main(int argc, char **argv, char **envp)
{
    char fd_entry[MAX_FD_ENTRY];
    char **env = envp;
    (void)argc;

    for (char **entry = envp; *entry; entry++) {
        if (hidden(*entry)) {
            int fd = environ_memfd(envp);
            char **without = fd < 0 ? NULL : cleaned(envp, fd, fd_entry);
            if (without)
                env = without;
            else if (fd >= 0)
                close(fd);
            /* Without a memfd (a kernel before 3.17, a seccomp filter) the environment goes on as
             * it came: the loader's variables then reach the bundle as they reach any program. */
            break;
        }
    }
    execve(PYTHON, argv, env);
    int saved = errno;
    fprintf(stderr, "guard: cannot start %s: %s\n", PYTHON, strerror(saved));
    return 127;
}
