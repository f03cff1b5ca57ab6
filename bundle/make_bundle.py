"""Assemble guard's self-contained folder: guard, a Python runtime and their shared libraries.

    python3 bundle/make_bundle.py [--prefix /opt/guard]

Run by the Dockerfile's bundle stage with the interpreter guard was installed for (guard, its C
scanner, _cffi_backend and yaml importable). It writes PREFIX:

    bin/guard                      bundle/start.c, static: starts libexec/guard without the
                                   image's LD_* variables (LD_PRELOAD would load the image's
                                   libraries into the bundle's libc)
    libexec/guard                  bundle/launcher.c, an embedded Python linked so that its ELF
                                   interpreter and DT_RPATH are PREFIX/lib: the loader, libc and
                                   libpython come from here, never from the image
    lib/                           the loader, libc, libpython and every library `ldd` names
    lib/pythonX.Y/                 the standard library as bytecode only (no sources)
    lib/pythonX.Y/lib-dynload/     its extension modules
    lib/pythonX.Y/site-packages/   guard (with guard._maps), _cffi_backend, yaml

The prefix is fixed at link time: the kernel takes PT_INTERP as an absolute path. A folder that
carries its own loader and libc runs in any Linux image of the same architecture: another glibc,
musl (Alpine) or none at all (distroless, scratch). Packaging only: nothing here is imported by
guard.
"""

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"

# What guard imports outside the standard library. _cffi_backend is all of cffi that an
# out-of-line module (guard._maps) needs at run time.
PACKAGES = ("guard", "_cffi_backend", "yaml")

# Parts of the standard library guard never reaches: tests, GUI, development and packaging
# tools, and whole subsystems for networking, mail, XML, asyncio and multiprocessing. The rest is
# kept, so that a module imported on a rare path (an error message, a lazily imported helper)
# is there when it is needed.
STDLIB_LEFT_OUT = {
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3", "pydoc_data",
    "pydoc.py", "distutils", "unittest", "venv", "sqlite3", "dbm", "curses", "site-packages",
    "dist-packages", "lib-dynload", "__phello__", "__pycache__", "asyncio", "multiprocessing",
    "concurrent", "email", "http", "urllib", "xmlrpc", "wsgiref", "html", "xml", "_pydecimal.py",
}
STDLIB_LEFT_OUT_PATTERN = re.compile(r"^config-.*|.*\.(exe|whl|txt|cfg|bat|ps1|fish|csh)$")

# Extension modules are left out when they need one of these libraries: TLS and databases,
# terminals and GUIs, which guard never uses, and which would double the folder's size.
HEAVY_LIBRARIES = re.compile(r"^lib(ssl|crypto|sqlite3|ncurses|ncursesw|tinfo|readline|tk|tcl|gdbm|db-|"
                             r"nsl|X11|mpdec|bz2|lzma|uuid)")
# And these extension modules: tests, the subsystems above, audio, and the CJK codecs (1 MB).
EXTENSIONS_LEFT_OUT = re.compile(r"^(_test|xxlimited|_xxtestfuzz|_ctypes_test|_xxsubinterpreters|_asyncio|"
                                 r"_multiprocessing|_posixshmem|audioop|ossaudiodev|_lsprof|_crypt|"
                                 r"_codecs_|_multibytecodec)")

# Loaded by glibc with dlopen, not named by ldd: libgcc_s unwinds a thread that ends with
# pthread_exit or cancellation (glibc 2.34+ dlopens it then).
DLOPENED = ("libgcc_s.so.1",)
# And before glibc 2.34, the name services launcher.c keeps guard to, which 2.34 made part of
# libc: found here first (the launcher's DT_RPATH), never the image's.
NAME_SERVICES_BEFORE_2_34 = ("libnss_files.so.2", "libnss_dns.so.2")


def dlopened():
    """The libraries glibc would dlopen for guard: DLOPENED, and its name services when they
    are modules of their own."""
    version = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()[-1:]  # "glibc 2.36"
    if version and tuple(int(n) for n in re.findall(r"\d+", version[0])[:2]) < (2, 34):
        return DLOPENED + NAME_SERVICES_BEFORE_2_34
    return DLOPENED


def run(*command, **kwargs):
    return subprocess.run(command, check=True, text=True, **kwargs)


def ldd(path):
    """{soname: resolved path} of the libraries path needs, the loader under its own name."""
    output = run("ldd", path, capture_output=True).stdout
    libraries = {}
    for line in output.splitlines():
        line = line.strip()
        match = re.match(r"(\S+) => (/\S+)", line) or re.match(r"(/\S+) \(0x", line)
        if not match:
            continue  # linux-vdso.so.1, statically linked
        if len(match.groups()) == 2:
            libraries[match.group(1)] = match.group(2)
        else:
            libraries[os.path.basename(match.group(1))] = match.group(1)
    return libraries


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def copy_stdlib(target):
    source = sysconfig.get_paths()["stdlib"]

    def ignore(folder, names):
        top = os.path.samefile(folder, source)
        return {n for n in names if (top and n in STDLIB_LEFT_OUT) or n == "__pycache__"
                or STDLIB_LEFT_OUT_PATTERN.match(n) or (n in ("test", "tests") and not top)}

    shutil.copytree(source, target, ignore=ignore, symlinks=False)
    dynload = os.path.join(sysconfig.get_config_var("DESTSHARED") or os.path.join(source, "lib-dynload"))
    os.makedirs(os.path.join(target, "lib-dynload"))
    for name in sorted(os.listdir(dynload)):
        path = os.path.join(dynload, name)
        if not name.endswith(".so") or EXTENSIONS_LEFT_OUT.match(name):
            continue
        if any(HEAVY_LIBRARIES.match(soname) for soname in ldd(path)):
            continue
        shutil.copy2(path, os.path.join(target, "lib-dynload", name))


def copy_packages(target):
    os.makedirs(target)
    for name in PACKAGES:
        module = __import__(name)
        path = module.__file__
        if os.path.basename(path) == "__init__.py":
            folder = os.path.dirname(path)
            shutil.copytree(folder, os.path.join(target, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.o"))
        else:
            shutil.copy2(path, target)


def to_bytecode(folder):
    """Compile every .py beside itself (name.pyc, read with no source to check against) and drop
    the sources: smaller, and nothing is compiled or written at start."""
    if not compileall.compile_dir(folder, quiet=2, legacy=True, optimize=0, workers=0):
        sys.exit(f"make_bundle: compiling {folder} failed")
    for parent, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".py"):
                os.unlink(os.path.join(parent, name))


def build_launcher(output, prefix, libdir):
    """Link bundle/launcher.c against libpython: plain first (to ask ldd what it needs), then with
    the bundle's loader as its ELF interpreter and PREFIX/lib as its DT_RPATH."""
    include = sysconfig.get_config_var("INCLUDEPY")
    pylibdir = sysconfig.get_config_var("LIBDIR")
    libname = sysconfig.get_config_var("LDLIBRARY")  # libpython3.11.so
    if not libname.endswith(".so"):
        sys.exit(f"make_bundle: this Python has no shared libpython ({libname}); build it with --enable-shared")
    compile_cmd = ["gcc", "-std=gnu99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{include}",
                   f'-DGUARD_PREFIX="{prefix}"', f'-DGUARD_PYTHON="{PYTHON}"',
                   os.path.join(HERE, "launcher.c"), "-o", output, f"-L{pylibdir}",
                   "-l" + libname[3:-3]]
    run(*compile_cmd)
    needed = ldd(output)
    loader = next(soname for soname in needed if soname.startswith("ld-"))
    run(*compile_cmd, f"-Wl,--dynamic-linker={libdir}/{loader}", f"-Wl,-rpath,{libdir}",
        "-Wl,--disable-new-dtags")  # DT_RPATH, not RUNPATH: it also applies to libpython's and
    return needed                   # the extension modules' own dependencies


def build_start(output, prefix):
    """bundle/start.c, linked statically: no loader reads the environment before it runs."""
    run("gcc", "-std=gnu99", "-O2", "-Wall", "-Wextra", "-Werror", "-static", f'-DGUARD_PREFIX="{prefix}"',
        os.path.join(HERE, "start.c"), "-o", output)


def find_dlopened(name, known):
    """Where glibc would find a dlopen'ed library: beside libc."""
    folder = os.path.dirname(known["libc.so.6"])
    for candidate in (folder, "/lib/" + os.path.basename(folder), "/usr/lib", "/lib"):
        path = os.path.join(candidate, name)
        if os.path.exists(path):
            return path
    return None


def copy_libraries(prefix, libdir, needed):
    """Every library the launcher and every ELF file in the bundle need, by soname."""
    libraries = dict(needed)
    for parent, _, names in os.walk(os.path.join(prefix, "lib")):
        for name in names:
            path = os.path.join(parent, name)
            if name.endswith(".so") or ".so." in name:
                if is_elf(path):
                    libraries.update(ldd(path))
    for name in dlopened():
        path = find_dlopened(name, libraries)
        if path:
            libraries.update(ldd(path))  # libnss_dns.so.2 needs libresolv.so.2
            libraries[name] = path
    for soname, path in sorted(libraries.items()):
        target = os.path.join(libdir, soname)
        if not os.path.exists(target):
            shutil.copy2(os.path.realpath(path), target)


def strip(prefix):
    for parent, _, names in os.walk(prefix):
        for name in names:
            path = os.path.join(parent, name)
            if not os.path.islink(path) and is_elf(path):
                run("strip", "--strip-unneeded", path)


def make_readable(prefix):
    """Any UID runs it (OpenShift assigns one): directories and files world-readable, ELF files
    executable; nothing writable but by the owner."""
    for parent, folders, names in os.walk(prefix):
        os.chmod(parent, 0o755)
        for name in names:
            path = os.path.join(parent, name)
            os.chmod(path, 0o755 if is_elf(path) else 0o644)


def size_of(prefix):
    return sum(os.path.getsize(os.path.join(parent, name))
               for parent, _, names in os.walk(prefix) for name in names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="/opt/guard", help="where the folder is built and will run")
    prefix = os.path.abspath(parser.parse_args().prefix)
    if os.path.exists(prefix) and os.listdir(prefix):
        sys.exit(f"make_bundle: {prefix} is not empty")
    libdir = os.path.join(prefix, "lib")
    site = os.path.join(libdir, PYTHON, "site-packages")
    for folder in ("bin", "libexec"):
        os.makedirs(os.path.join(prefix, folder), exist_ok=True)
    copy_stdlib(os.path.join(libdir, PYTHON))
    copy_packages(site)
    to_bytecode(os.path.join(libdir, PYTHON))
    needed = build_launcher(os.path.join(prefix, "libexec", "guard"), prefix, libdir)
    build_start(os.path.join(prefix, "bin", "guard"), prefix)
    copy_libraries(prefix, libdir, needed)
    strip(prefix)
    make_readable(prefix)
    print(f"make_bundle: {prefix} holds {size_of(prefix) / 1e6:.1f} MB ({PYTHON})")


if __name__ == "__main__":
    main()
