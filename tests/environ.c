/* The environment as a list, for tests: no C library call between the kernel and these bytes.
 *
 *   environ dump                       writes each entry of its envp followed by a NUL
 *   environ exec ENTRY... -- PROGRAM ARG...
 *                                      execve(PROGRAM, [PROGRAM, ARG...], [ENTRY...]) exactly:
 *                                      names twice, entries without '=', empty ones
 *
 * Built static against musl (musl-gcc), whose start-up reads no variable and rewrites none, so
 * that what it dumps is what execve gave it, even where glibc's loader would rewrite
 * GLIBC_TUNABLES or drop LD_* (secure mode). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv, char **envp)
{
    if (argc >= 2 && strcmp(argv[1], "dump") == 0) {
        for (char **e = envp; *e; e++)
            if (fwrite(*e, 1, strlen(*e) + 1, stdout) != strlen(*e) + 1)
                return 1;
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (argc >= 2 && strcmp(argv[1], "exec") == 0) {
        int sep = 2;
        while (sep < argc && strcmp(argv[sep], "--") != 0)
            sep++;
        if (sep + 1 >= argc)
            return 2;
        argv[sep] = NULL; /* argv[2..sep) is the environment */
        execve(argv[sep + 1], argv + sep + 1, argv + 2);
        perror("environ exec");
        return 127;
    }
    fputs("usage: environ dump | environ exec ENTRY... -- PROGRAM ARG...\n", stderr);
    return 2;
}
