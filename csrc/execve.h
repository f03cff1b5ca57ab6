/* Replacing this process with a program: what ffi.cdef() is given, nothing else. */

int guard_execve(const char *path, char *const argv[], char *const envp[]);
