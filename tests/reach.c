/* What a process reaches of others beyond their files, for the audit's table
 * (tests/integration/test_kubernetes_patterns.py):
 *   reach PID...           for each PID, whether this process reads the environment in its
 *                          memory through process_vm_readv ("PID vm-read yes|no") and attaches
 *                          to it with ptrace ("PID ptrace yes|no"; ended by this exit)
 *   reach --confined CMD   CMD under guard's seccomp filter (csrc/confine.c), as guard maps --user
 *                          runs, or exit 126 when the filter cannot be set
 * Built static: the images it runs in need nothing of it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <unistd.h>

#include "confine.h"

/* 1 when the environment of pid (env_start and env_end, fields 50 and 51 of /proc/PID/stat)
 * could be read from its memory and holds an entry, else 0. */
static int reads_environment(int pid)
{
    char path[64], line[4096], environment[4096];
    unsigned long start = 0, end = 0;
    int field = 2;
    FILE *stat;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    stat = fopen(path, "r");
    if (!stat)
        return 0;
    if (!fgets(line, sizeof(line), stat) || !strrchr(line, ')')) {
        fclose(stat);
        return 0;
    }
    fclose(stat);
    for (char *word = strtok(strrchr(line, ')') + 1, " "); word; word = strtok(NULL, " ")) {
        field++;
        if (field == 50)
            start = strtoul(word, NULL, 10);
        else if (field == 51)
            end = strtoul(word, NULL, 10);
    }
    if (end <= start)
        return 0;
    struct iovec local = {environment, sizeof(environment)};
    struct iovec remote = {(void *)start, end - start < sizeof(environment) ? end - start : sizeof(environment)};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) > 0 && memchr(environment, '=', remote.iov_len);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--confined") == 0) {
        if (guard_deny_tracing() != 0)
            return 126;
        execvp(argv[2], argv + 2);
        return 127;
    }
    for (int i = 1; i < argc; i++) {
        int pid = atoi(argv[i]);
        printf("%d vm-read %s\n", pid, reads_environment(pid) ? "yes" : "no");
        printf("%d ptrace %s\n", pid, ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0 ? "yes" : "no");
    }
    return 0;
}
