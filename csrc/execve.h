/* Replacing this process with a program, with the environment this process was given: what
 * ffi.cdef() is given, nothing else. */

int guard_execve(const char *path, char *const argv[], char *const envp[]);
long guard_received_environ(char *out, unsigned long size, int *cut);
