/* A seccomp filter for guard maps --user (guard/privileges.py): the process keeps
 * CAP_SYS_PTRACE to read every process's /proc/PID/maps, and the kernel's ptrace access check
 * (ptrace_may_access) that the capability passes guards more than those files. With it,
 * process_vm_readv(2) reads and process_vm_writev(2) writes any process's memory, ptrace(2)
 * attaches to any process, pidfd_getfd(2) takes its descriptors, and kcmp, process_madvise,
 * get_robust_list, perf_event_open, move_pages and migrate_pages act on it or tell of it. A
 * container runtime's default profile allows them all once CAP_SYS_PTRACE is added (Docker's
 * and containerd's). This filter makes each fail with EPERM, as it would without the
 * capability, so that the maps and what file modes give any user are all the capability reaches
 * (each call's check: ptrace(2), "Ptrace access mode checking", and the calls' own pages).
 * Any system call of another ABI (32-bit x86, x32 on x86-64, 32-bit Arm on arm64) fails the same
 * way: guard makes none, and each ABI numbers ptrace apart. The filter is for good: a process
 * cannot remove one, and no_new_privs, which it needs, stays set across execve too.
 * Reference: the kernel's Documentation/userspace-api/seccomp_filter.rst. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000 /* arch/x86/include/uapi/asm/unistd.h: x32 numbers have it */
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* Numbered alike on every architecture since Linux 5.6 and 5.10 (include/uapi/asm-generic):
 * a C library's headers older than the kernel may not name them. */
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC 1
#endif

#ifdef NATIVE_ARCH
static const unsigned int reaching[] = {
    __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_pidfd_getfd, __NR_kcmp,
    __NR_process_madvise, __NR_get_robust_list, __NR_perf_event_open, __NR_move_pages,
    __NR_migrate_pages,
};
#define REACHING (sizeof(reaching) / sizeof(reaching[0]))
/* Loading the arch, checking it, loading the number, (x86-64) the x32 check, one check per call,
 * then the two returns. */
#define MOST (4 + REACHING + 2)

/* Writes the filter into program; returns its length. Every jump lands on the last instruction,
 * the refusal, or falls through. */
static unsigned short build(struct sock_filter *program)
{
    unsigned short n = 0, total, i;

#ifdef X32_SYSCALL_BIT
    total = MOST;
#else
    total = MOST - 1;
#endif
#define TO_REFUSAL(at) ((unsigned char)(total - 1 - (at) - 1))
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    program[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, TO_REFUSAL(n));
    n++;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef X32_SYSCALL_BIT
    program[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, TO_REFUSAL(n), 0);
    n++;
#endif
    for (i = 0; i < REACHING; i++, n++)
        program[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, reaching[i], TO_REFUSAL(n), 0);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
#undef TO_REFUSAL
    return n;
}
#endif

/* Sets no_new_privs and installs the filter on every thread of the process: 0, or -errno
 * (-ENOSYS on an architecture this file does not know, or a kernel without seccomp filters). */
int guard_deny_tracing(void)
{
#ifdef NATIVE_ARCH
    struct sock_filter program[MOST];
    struct sock_fprog filter = {.len = build(program), .filter = program};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    long installed = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &filter);
    if (installed < 0)
        return -errno;
    return installed == 0 ? 0 : -EAGAIN; /* the id of a thread that could not take it: none did */
#else
    return -ENOSYS;
#endif
}
