/* csrc/confine.c on its own (tests/test_privileges.py): whether a child can be attached before
 * guard_deny_tracing(), then each system call the filter refuses, tried on a child of this
 * process (no capability needed to reach it), one line each: "NAME: the error" or "NAME: yes". */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"

static void said(const char *name, long result)
{
    printf("%s: %s\n", name, result < 0 ? strerror(errno) : "yes");
}

/* A 32-bit system call from this 64-bit process, through int 0x80: the return value (-errno). */
#ifdef __x86_64__
static long int80(long number, long a, long b)
{
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(a), "c"(b), "d"(0), "S"(0) : "memory");
    return result;
}
#endif

/* A child that waits to be killed. */
static pid_t waiting_child(void)
{
    pid_t child = fork();

    if (child == 0) {
        pause();
        _exit(0);
    }
    return child;
}

static void end(pid_t child)
{
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

int main(void)
{
    char byte = 0, there = 0;
    struct iovec local = {&byte, 1}, remote = {&there, 1};
    pid_t child = waiting_child();

    said("before: ptrace", ptrace(PTRACE_SEIZE, child, NULL, NULL));
    end(child);
    child = waiting_child();
    printf("confined: %d\n", guard_deny_tracing());
    said("ptrace", ptrace(PTRACE_SEIZE, child, NULL, NULL));
    said("process_vm_readv", process_vm_readv(child, &local, 1, &remote, 1, 0));
    said("process_vm_writev", process_vm_writev(child, &local, 1, &remote, 1, 0));
    said("pidfd_getfd", syscall(__NR_pidfd_getfd, 0, 0, 0));
    said("kcmp", syscall(__NR_kcmp, getpid(), child, 0, 0, 0));
    said("process_madvise", syscall(__NR_process_madvise, 0, NULL, 0, 0, 0));
    said("get_robust_list", syscall(__NR_get_robust_list, child, NULL, NULL));
    said("perf_event_open", syscall(__NR_perf_event_open, NULL, child, -1, -1, 0));
    said("move_pages", syscall(__NR_move_pages, child, 0, NULL, NULL, NULL, 0));
    said("migrate_pages", syscall(__NR_migrate_pages, child, 0, NULL, NULL));
#ifdef __x86_64__
    pid_t untraced = waiting_child(); /* the one above may be traced already */
    long result = int80(26, PTRACE_SEIZE, untraced); /* i386: __NR_ptrace is 26 */
    errno = result < 0 ? (int)-result : 0;
    said("i386 ptrace", result);
    said("x32 ptrace", syscall(0x40000000 | 521, PTRACE_SEIZE, untraced, 0, 0)); /* x32: 521 */
    end(untraced);
#endif
    FILE *maps = fopen("/proc/self/maps", "r");
    printf("own maps: %s\n", maps && fgetc(maps) != EOF ? "yes" : "no");
    if (maps)
        fclose(maps);
    end(child);
    return 0;
}
