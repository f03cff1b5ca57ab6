/* Taking away the system calls that reach into other processes: what ffi.cdef() is given,
 * nothing else. */

int guard_deny_tracing(void);
