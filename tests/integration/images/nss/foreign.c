/* A name service module of the image, libnss_foreign.so.2, that must never run inside guard: as
 * soon as it is loaded it leaves a mark (/tmp/nss-foreign-loaded), and any host lookup through it
 * aborts the process, as a module built for another libc may crash it. The image's own programs
 * load it (getent, the control); the bundle's glibc must not. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void loaded(void)
{
    int fd = open("/tmp/nss-foreign-loaded", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
        close(fd);
}

/* The entry points glibc's getaddrinfo and gethostbyname* look for in a "hosts" module. */
int _nss_foreign_gethostbyname4_r(void) { abort(); }
int _nss_foreign_gethostbyname3_r(void) { abort(); }
int _nss_foreign_gethostbyname2_r(void) { abort(); }
int _nss_foreign_gethostbyname_r(void) { abort(); }
