/* execve(2) with the environment as the list it is, and that list as this process received it.
 *
 * Python's os.execve takes a mapping, which keeps one value per name and cannot hold an entry
 * without '=', so a program started through it would not get the environment guard was given
 * (duplicates, odd entries) byte for byte. Nor is the process's own environment that list any
 * more by the time guard runs: glibc's loader may have replaced or removed entries (tunables,
 * secure mode) and CPython sets LC_CTYPE when it coerces the C locale (PEP 538). What the kernel
 * copied at exec is still on the stack, and guard_received_environ() reads it from there.
 * Plain C, no Python: the caller searches PATH and owns every buffer. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "execve.h"

/* Where the kernel left the stack at exec (argc, then argv[], NULL, envp[], NULL, auxv): glibc's
 * loader sets it (elf/dl-sysdep.c, exported as GLIBC_2.2.5); weak, so that a C library without
 * it (musl) leaves it NULL rather than failing to load the module. */
extern void *__libc_stack_end __attribute__((weak));
extern char **environ;

#define TUNABLES "GLIBC_TUNABLES="
/* More than the kernel ever copies: argument and environment strings together are held to a
 * quarter of the stack limit, at most 6 MiB (fs/exec.c, get_arg_page). */
#define MOST_STRINGS (64UL << 20)

/* Returns -errno: execve() comes back only when it fails. */
int guard_execve(const char *path, char *const argv[], char *const envp[])
{
    execve(path, argv, envp);
    return -errno;
}

/* The environment strings the kernel copied at exec, [*start, *end): 0, or -ENOSYS when the C
 * library does not say where the stack began, -EINVAL when what lies there is not the layout
 * checked here. fs/exec.c copies the file name, then the environment, then the arguments, each
 * string below the one before, so the environment begins after the last argument string and
 * ends where the file name AT_EXECFN points to begins. Nothing above the stack pointer at exec is
 * unmapped, so every address read here, below AT_EXECFN, can be read. */
static int environ_bounds(const char **start, const char **end)
{
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    const long *stack = &__libc_stack_end ? __libc_stack_end : NULL;

    if (!stack || !execfn)
        return -ENOSYS;
    if ((const char *)stack >= execfn)
        return -EINVAL;
    long argc = stack[0];
    char *const *argv = (char *const *)(stack + 1);
    if (argc < 1 || (const char *)(argv + argc + 1) > execfn || argv[argc] != NULL)
        return -EINVAL;
    const char *last = argv[argc - 1];
    if (last < (const char *)(argv + argc + 1) || last >= execfn || (size_t)(execfn - last) > MOST_STRINGS)
        return -EINVAL;
    const char *first = last + strnlen(last, (size_t)(execfn - last)) + 1;
    if (first > execfn || (first < execfn && execfn[-1] != '\0'))
        return -EINVAL;
    *start = first;
    *end = execfn;
    return 0;
}

/* 1 when entry is what some pointer of environ points to, else 0. */
static int in_environ(const char *entry)
{
    for (char **e = environ; e && *e; e++)
        if (*e == entry)
            return 1;
    return 0;
}

/* The next GLIBC_TUNABLES entry of environ from *from on that lies outside [start, end): one the
 * loader copied; NULL when none is left. Moves *from past it. */
static const char *next_copy(char ***from, const char *start, const char *end)
{
    for (char **e = *from; e && *e; e++) {
        if ((*e < start || *e >= end) && strncmp(*e, TUNABLES, sizeof(TUNABLES) - 1) == 0) {
            *from = e + 1;
            return *e;
        }
    }
    *from = NULL;
    return NULL;
}

/* 1 when copy is what the entry at text (room bytes left in the block) was before the loader
 * ended each tunable's value in place with a NUL where a ':' stood, else 0. */
static int was(const char *text, size_t room, const char *copy)
{
    size_t len = strlen(copy);
    if (len >= room || text[len] != '\0')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] != copy[i] && !(text[i] == '\0' && copy[i] == ':'))
            return 0;
    return 1;
}

/* 1 when copy is text with some of its ':'-separated tunables left out, else 0: in secure mode
 * the loader's copy leaves out what a privileged program may not be tuned with, and a glibc that
 * no longer writes in place (2.39, and 2.36 as Debian patched it) leaves the string as it came. */
static int leaves_out(const char *copy, const char *text)
{
    const char *c = copy + sizeof(TUNABLES) - 1, *t = text + sizeof(TUNABLES) - 1;

    while (*c) {
        size_t n = strcspn(c, ":"), m;
        while ((m = strcspn(t, ":")) != n || strncmp(c, t, n) != 0) {
            if (!t[m])
                return 0;
            t += m + 1;
        }
        c += n + (c[n] == ':');
        t += m + (t[m] == ':');
    }
    return 1;
}

/* Puts back, in block (a copy of the environment strings at start), each GLIBC_TUNABLES entry that
 * glibc's loader cut: its tunables parser writes a NUL after each value it takes, in the string
 * the kernel copied, and points environ at an intact copy of its own (glibc 2.26 to 2.38,
 * elf/dl-tunables.c). Returns how many such entries could not be put back: cut, and the
 * loader's copy left something out. */
static int restore_tunables(char *block, size_t len, const char *start)
{
    char **copies = environ;
    int cut = 0;

    for (size_t at = 0; at < len; at += strlen(block + at) + 1) {
        if (strncmp(block + at, TUNABLES, sizeof(TUNABLES) - 1) != 0 || in_environ(start + at))
            continue;
        const char *copy = copies ? next_copy(&copies, start, start + len) : NULL;
        if (!copy)
            continue;  /* nothing is known of it */
        /* The cut form first: cut after a tunable followed by nothing but ':' ("a=2:"), the entry
         * still holds every tunable of its copy, and would pass for one the loader left whole. */
        if (was(block + at, len - at, copy))
            memcpy(block + at, copy, strlen(copy));
        else if (!leaves_out(copy, block + at))
            cut++;  /* else as it came: nothing was cut, the copy only leaves some out */
    }
    return cut;
}

/* Copies the environment this process was started with into out: every entry followed by its
 * NUL, in the order, count and bytes the kernel was given them, whatever the loader or the
 * program did to environ since. Returns its length, which may be more than size (then nothing
 * is copied: call again with that much), or -errno (environ_bounds). *cut: the entries that
 * could not be put back as they came (restore_tunables). */
long guard_received_environ(char *out, unsigned long size, int *cut)
{
    const char *start, *end;
    int rc = environ_bounds(&start, &end);

    *cut = 0;
    if (rc < 0)
        return rc;
    size_t len = (size_t)(end - start);
    if (len > size)
        return (long)len;
    memcpy(out, start, len);
    *cut = restore_tunables(out, len, start);
    return (long)len;
}
