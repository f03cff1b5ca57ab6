/* execve(2) with the environment as the list it is: Python's os.execve takes a mapping, which
 * keeps one value per name and cannot hold an entry without '=', so a program started through it
 * would not get the environment guard was given (duplicates, odd entries) byte for byte. Plain C,
 * no Python: the caller searches PATH and owns every buffer. */
#include <errno.h>
#include <unistd.h>

#include "execve.h"

/* Returns -errno: execve() comes back only when it fails. */
int guard_execve(const char *path, char *const argv[], char *const envp[])
{
    execve(path, argv, envp);
    return -errno;
}
