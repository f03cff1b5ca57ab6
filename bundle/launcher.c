/*
 * /opt/guard/libexec/guard in the bundle, started by bin/guard (bundle/start.c): an embedded
 * Python that runs guard.cli.main with this process's argv and nothing else from the image it is
 * copied into.
 *
 * Why a launcher and not the python binary: the interpreter must start guard without a script
 * path, a -m flag or a PYTHON* variable (the program guard execs must get the environment guard
 * got, byte for byte, so nothing can be added to it), and without a shell (distroless and
 * scratch images have none). The ELF interpreter (PT_INTERP) and DT_RPATH of this binary point
 * into GUARD_PREFIX/lib (set at link time by bundle/make_bundle.py), so the loader, libc and
 * libpython come from the bundle, not from the image.
 *
 * The configuration is the one `python -I -S -B` gives, plus:
 * - UTF-8 mode and no setlocale(): argv and paths decode as UTF-8 with surrogateescape (bytes
 *   round-trip to execve unchanged) and no locale file of the image is ever opened;
 * - an explicit module search path, so nothing is probed outside the bundle;
 * - Python's usual signal handlers (SIGINT -> KeyboardInterrupt, SIGPIPE and SIGXFSZ ignored), as
 *   the pip-installed guard has them; guard puts the defaults back before it execs the program;
 * - when bin/guard passed the environment as received in a memfd (GUARD_BUNDLE_ENVIRON_FD), the
 *   option -X guard_environ_fd=N in its place: guard reads the program's environment from there;
 * - the name service switch set to the bundle's own sources ("files" and "dns") before anything
 *   else runs, whatever the image's /etc/nsswitch.conf names (own_name_services below).
 * Reference: Python/C API "Python Initialization Configuration" (PyConfig, PyPreConfig).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fcntl.h>
#include <sys/stat.h>
#ifdef __GLIBC__
#include <nss.h>
#endif
#include <stdlib.h>
#include <wchar.h>

#ifndef GUARD_PREFIX
#define GUARD_PREFIX "/opt/guard"
#endif
#ifndef GUARD_PYTHON /* the stdlib folder under lib/: python3.11 */
#error "define GUARD_PYTHON, e.g. -DGUARD_PYTHON='\"python3.11\"'"
#endif

#define LIB GUARD_PREFIX "/lib/" GUARD_PYTHON
#define FD_VARIABLE "GUARD_BUNDLE_ENVIRON_FD"
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) /* as bundle/start.c */

static const char *const search_path[] = {LIB, LIB "/lib-dynload", LIB "/site-packages"};

static const wchar_t run_guard[] = L"import sys\nfrom guard.cli import main\nsys.exit(main())\n";

/* Makes the bundle's libc use only its own name services: "files" (/etc/hosts, /etc/passwd, ...)
 * and, for host names, "dns" (/etc/resolv.conf's servers), for every database of glibc's
 * nss/databases.def. Why: glibc loads each source the image's /etc/nsswitch.conf names (sss,
 * ldap, mdns4_minimal, systemd, resolve, ...) as libnss_NAME.so.2 from the image's /lib, built
 * for the image's libc; loaded into the bundle's, such a module may crash or hang guard when
 * Elasticsearch's network.host names a host. Since glibc 2.34 "files" and "dns" are part of libc
 * itself (nss/nss_module.c, module_load): nothing is loaded. An older glibc loads
 * libnss_files.so.2 and libnss_dns.so.2, which make_bundle.py copies beside it.
 * __nss_configure_lookup (<nss.h>) replaces a database's line and stops glibc re-reading the file
 * (nss/nss_database.c); a replaced "hosts" also keeps nscd out (getaddrinfo.c,
 * __nss_database_custom). A database this glibc does not know gives -1: nothing to replace. */
static void own_name_services(void)
{
#ifdef __GLIBC__
    static const char *const sources[][2] = {
        {"hosts", "files dns"}, {"networks", "files dns"}, {"aliases", "files"}, {"ethers", "files"},
        {"group", "files"}, {"gshadow", "files"}, {"initgroups", "files"}, {"netgroup", "files"},
        {"passwd", "files"}, {"protocols", "files"}, {"publickey", "files"}, {"rpc", "files"},
        {"services", "files"}, {"shadow", "files"},
    };
    struct stat conf;
    size_t i;

    /* glibc reads the file before it replaces a line: a FIFO there would hold guard's start.
     * guard then looks up no name at all (guard/host.py, RESOLVER_FILES). */
    if (stat("/etc/nsswitch.conf", &conf) == 0 && !S_ISREG(conf.st_mode))
        return;
    for (i = 0; i < sizeof(sources) / sizeof(sources[0]); i++)
        (void)__nss_configure_lookup(sources[i][0], sources[i][1]);
#endif
}

/* Exits with Python's message when status is an error; returns otherwise. */
static void check(PyStatus status, PyConfig *config)
{
    if (PyStatus_Exception(status)) {
        if (config)
            PyConfig_Clear(config);
        Py_ExitStatusException(status);
    }
}

/* The memfd bin/guard named, made close-on-exec (neither the program nor --watch's child gets
 * it) and its variable removed, so guard's settings and os.environ never show it; -1 if none.
 * Only a memfd sealed as bin/guard seals it is taken: when bin/guard could not make one it
 * passes the environment on as it came, and a variable of that name is then the user's own
 * (guard reads the environment from its own stack instead, and the program gets the variable as
 * given). */
static int received_environ_fd(void)
{
    const char *text = getenv(FD_VARIABLE);
    char *end;
    long fd;

    if (!text)
        return -1;
    fd = strtol(text, &end, 10);
    unsetenv(FD_VARIABLE);
    if (*text == '\0' || *end != '\0' || fd <= 2 || fd > 1 << 20)
        return -1;
    if ((fcntl((int)fd, F_GET_SEALS) & SEALS) != SEALS || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return (int)fd;
}

/* Fills config from argv; exits with Python's message on failure. */
static void configure(PyConfig *config, int argc, char **argv, int environ_fd)
{
    size_t i;

    PyConfig_InitIsolatedConfig(config);
    config->site_import = 0;
    config->write_bytecode = 0;  /* a read-only root and any UID: nothing is written */
    config->install_signal_handlers = 1;
    config->pathconfig_warnings = 0;
    config->parse_argv = 0;  /* sys.argv is argv as given: guard parses it */
    check(PyConfig_SetBytesString(config, &config->program_name, GUARD_PREFIX "/bin/guard"), config);
    check(PyConfig_SetBytesString(config, &config->executable, GUARD_PREFIX "/bin/guard"), config);
    check(PyConfig_SetBytesString(config, &config->home, GUARD_PREFIX), config);
    check(PyConfig_SetBytesArgv(config, argc, argv), config);
    check(PyConfig_SetString(config, &config->run_command, run_guard), config);
    if (environ_fd >= 0) {
        wchar_t option[64];
        swprintf(option, sizeof(option) / sizeof(option[0]), L"guard_environ_fd=%d", environ_fd);
        check(PyWideStringList_Append(&config->xoptions, option), config);
    }
    config->module_search_paths_set = 1;
    for (i = 0; i < sizeof(search_path) / sizeof(search_path[0]); i++) {
        wchar_t *path = Py_DecodeLocale(search_path[i], NULL);
        if (!path) {
            PyConfig_Clear(config);
            Py_ExitStatusException(PyStatus_NoMemory());
        }
        check(PyWideStringList_Append(&config->module_search_paths, path), config);
        PyMem_RawFree(path);
    }
}

int main(int argc, char **argv)
{
    PyPreConfig preconfig;
    PyConfig config;

    own_name_services();
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    preconfig.configure_locale = 0;
    check(Py_PreInitialize(&preconfig), NULL);

    configure(&config, argc, argv, received_environ_fd());
    check(Py_InitializeFromConfig(&config), &config);
    PyConfig_Clear(&config);
    return Py_RunMain();
}
