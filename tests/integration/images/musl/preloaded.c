/* A musl library that says so when the loader preloads it (LD_PRELOAD), as jemalloc is preloaded
 * in front of JVMs and Redis. */
#include <unistd.h>

__attribute__((constructor)) static void loaded(void)
{
    static const char line[] = "musl library preloaded\n";
    write(STDERR_FILENO, line, sizeof(line) - 1);
}
