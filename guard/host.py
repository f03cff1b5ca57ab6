"""Reading host facts: sysctls, resource limits, transparent huge pages, where guard runs; and
writing the few files guard writes: a sysctl or THP knob (guard fix) and a file it replaces
whole (metrics, sysctl.d).

Reading is kept apart from judging: every reader returns the observed value or raises
``Unreadable`` with the reason, and the checks decide what the value means. "/proc", "/sys",
"/etc/sysctl.d" and the root under which containers' marker files are read live here only,
overridable with GUARD_PROCFS, GUARD_SYSFS, GUARD_SYSCTL_D, GUARD_SYSCTL_ROOT (the root the
boot's other sysctl files are read under) and GUARD_ROOTFS so tests can feed
crafted trees.
"""

import errno
import os
import resource
import stat

from guard.records import record

UNLIMITED = float("inf")

# The most guard reads of one file. Host values are a few bytes; the largest stock configuration
# file among the programs guard knows, Redis's redis.conf, is about 110 KiB. 1 MiB is ten times
# that, and libyaml composes it in half a second: a bigger file is not read, with the reason.
FILE_LIMIT = 1 << 20

# What a path is when it is not a regular file, and why guard leaves it alone.
_CONSUMED = "reading it would wait for a writer or take what the program is to read"
_DEVICE = "opening a device can act on it, and reading it may never end"
FILE_KINDS = ((stat.S_ISDIR, "a directory", "a directory holds no settings"),
              (stat.S_ISFIFO, "a FIFO or pipe", _CONSUMED),
              (stat.S_ISSOCK, "a socket", _CONSUMED),
              (stat.S_ISCHR, "a character device", _DEVICE),
              (stat.S_ISBLK, "a block device", _DEVICE))


class Unreadable(Exception):
    """A file or value that cannot be read, with the reason; ``missing`` when it does not exist."""

    def __init__(self, reason, missing=False):
        super().__init__(reason)
        self.missing = missing


class Unwritable(Exception):
    """A file guard did not write: str() names it and says why; ``why`` is the reason alone
    ("it is a FIFO", "Read-only file system"); ``unfit`` when guard left it alone because of what
    it is, rather than failed to write it."""

    def __init__(self, path, why, unfit=False):
        super().__init__(f"{'not writing' if unfit else 'cannot write'} {path}: {why}")
        self.why, self.unfit = why, unfit


def proc_root():
    return os.environ.get("GUARD_PROCFS") or "/proc"


def sys_root():
    return os.environ.get("GUARD_SYSFS") or "/sys"


def root_fs():
    """Where the marker files of containers are read: /run/.containerenv, /.dockerenv, the
    Kubernetes service-account folder (guard/place.py)."""
    return os.environ.get("GUARD_ROOTFS") or "/"


def sysctl_root():
    """Where the boot's sysctl files are read from (ROOT/etc/sysctl.d, ROOT/usr/lib/sysctl.d,
    ROOT/etc/sysctl.conf...): GUARD_SYSCTL_ROOT (a DaemonSet mounts the node's root there), None
    when it is not named."""
    return os.environ.get("GUARD_SYSCTL_ROOT") or None


def sysctl_d_root():
    """Where guard fix --persist keeps sysctl.d(5) files: GUARD_SYSCTL_D (a DaemonSet mounts the
    node's here), else etc/sysctl.d under GUARD_SYSCTL_ROOT or /."""
    return os.environ.get("GUARD_SYSCTL_D") or os.path.join(sysctl_root() or "/", "etc", "sysctl.d")


def _not_regular(path, mode):
    kind, why = next(((kind, why) for test, kind, why in FILE_KINDS if test(mode)), ("of an unknown kind", ""))
    return Unreadable(f"{path} is {kind}, not a regular file: not read ({why})" if why else
                      f"{path} is {kind}, not a regular file: not read")


def _too_large(path, size, limit, more=False):
    return Unreadable(f"{path} is [{size}{'+' if more else ''}] bytes, more than the [{limit}] guard reads: not read")


def _cannot_read(path, error):
    missing = error.errno in (errno.ENOENT, errno.ENOTDIR)
    return Unreadable(f"cannot read {path}: {error.strerror or error}", missing=missing)


def read_bytes(path, limit=FILE_LIMIT):
    """The content of a regular file, or Unreadable naming the file and the reason.

    Only a regular file is opened, and what is opened is checked again before it is read.
    Opening a FIFO waits for a writer (or lets through a writer that waits for the program),
    reading a pipe or a terminal takes bytes the program was to read, and opening a device can
    act on it: none of these is guard's to touch. /proc and /sys files are regular files whose
    st_size (0, 4096) says nothing of their length, so they are read, up to the limit.
    """
    try:
        before = os.stat(path)
    except OSError as e:
        raise _cannot_read(path, e) from None
    except ValueError:  # a NUL byte in the path: no file has that name
        raise Unreadable(f"cannot read {path!r}: a path cannot hold a NUL byte", missing=True) from None
    if not stat.S_ISREG(before.st_mode):
        raise _not_regular(path, before.st_mode)
    if before.st_size > limit:
        raise _too_large(path, before.st_size, limit)
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO since the stat, open returns.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise _cannot_read(path, e) from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(opened.st_mode):
            raise Unreadable(f"{path} changed while guard opened it: not read")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise _too_large(path, size, limit, more=True)
    except OSError as e:
        raise _cannot_read(path, e) from None
    finally:
        os.close(fd)


def read_text(path):
    """The stripped text of a host file, or Unreadable naming the file and the reason."""
    return read_bytes(path).decode("ascii", errors="replace").strip()


# Dots and slashes trade places in a name whose first separator is a slash: the rule of
# sysctl(8) (procps' slashdot()) and of sysctl.d(5), by which a dot within a component (a VLAN's
# eth0.100) is written as "/" in the dotted form: net.ipv4.conf.eth0/100.forwarding.
_DOT_FOR_SLASH = str.maketrans("./", "/.")


def sysctl_name(name):
    """A sysctl's name in its dotted form, as sysctl(8) prints it: ``vm/max_map_count`` ->
    ``vm.max_map_count``, ``net/ipv4/conf/eth0.100/rp_filter`` -> ``net.ipv4.conf.eth0/100.rp_filter``."""
    dot, slash = name.find("."), name.find("/")
    return name.translate(_DOT_FOR_SLASH) if slash >= 0 and (dot < 0 or slash < dot) else name


def sysctl_components(name):
    """``vm.max_map_count`` -> ["vm", "max_map_count"]: the names of the file's path under
    /proc/sys; a "/" in a dotted name is a dot of the path (sysctl_name)."""
    return sysctl_name(name).translate(_DOT_FOR_SLASH).split("/")


def sysctl_path(name):
    """``vm.max_map_count`` -> ``<proc root>/sys/vm/max_map_count``."""
    return os.path.join(proc_root(), "sys", *sysctl_components(name))


def sysctl_folder(components):
    """What a folder under <proc root>/sys holds: {name: whether it is a folder itself}, or
    Unreadable (missing when there is no such folder)."""
    path = os.path.join(proc_root(), "sys", *components)
    try:
        with os.scandir(path) as entries:
            return {entry.name: entry.is_dir(follow_symlinks=False) for entry in entries}
    except OSError as e:
        raise _cannot_read(path, e) from None
    except ValueError:  # a NUL byte in a component: no folder has that name
        raise Unreadable(f"cannot read {path!r}: a path cannot hold a NUL byte", missing=True) from None


def read_sysctl(name):
    """The value of a sysctl as text (``65530``, ``4096 16384 4194304`` for vectors)."""
    return read_text(sysctl_path(name))


THP_ENABLED = ("kernel", "mm", "transparent_hugepage", "enabled")


def thp_path():
    return os.path.join(sys_root(), *THP_ENABLED)


def read_thp():
    """The selected transparent huge page mode: the bracketed word of ``always [madvise] never``.

    Source: Documentation/admin-guide/mm/transhuge.rst. Kernels built without THP have no file.
    """
    path = thp_path()
    text = read_text(path)
    start, end = text.find("["), text.find("]")
    if start < 0 or end < start:
        raise Unreadable(f"unexpected content in {path}: [{text}]")
    return text[start + 1 : end]


def write_knob(path, value):
    """Write value to a kernel knob that exists (a sysctl under /proc/sys, THP's file under /sys),
    in one write(), as sysctl(8) and `echo value > path` do; raises Unwritable with the reason.

    Only a regular file is written, never through a symlink (O_NOFOLLOW), and what is opened is
    checked again: a crafted tree (GUARD_PROCFS) may hold anything, and guard never writes to a
    device or FIFO. O_TRUNC: a regular file of a crafted tree is rewritten whole; /proc and /sys
    ignore it.
    """
    try:
        before = os.lstat(path)
    except OSError as e:
        raise Unwritable(path, e.strerror) from None
    if not stat.S_ISREG(before.st_mode):
        raise Unwritable(path, f"it is {_kind(before.st_mode)}, not a regular file", unfit=True)
    flags = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise Unwritable(path, e.strerror) from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise Unwritable(path, "it changed while guard opened it", unfit=True)
        data = f"{value}\n".encode()
        if os.write(fd, data) != len(data):  # the kernel takes a sysctl in one write or not at all
            raise Unwritable(path, "the value was written in part")
    except OSError as e:
        raise Unwritable(path, e.strerror) from None
    finally:
        os.close(fd)


def write_sysctl(name, value):
    write_knob(sysctl_path(name), value)


def write_thp(mode):
    write_knob(thp_path(), mode)


# What lstat() says a path is, for the message when it is not a regular file.
LSTAT_KINDS = ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
               (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))


def _kind(mode):
    return "a " + next((name for test, name in LSTAT_KINDS if test(mode)), "special file")


def unfit_to_replace(path):
    """Why path cannot be a file guard replaces ("is a FIFO", "cannot be looked up: Permission
    denied"), or None when it is a regular file or does not exist yet. guard writes nothing but
    what the user named, and never over a device, a FIFO or a symlink: the file is replaced by
    rename, which would put a regular file in their place. An empty path names no file (lstat
    says it does not exist, and the temporary file would land in the parent folder)."""
    if not path:
        return "names no file"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None  # a missing directory is said when writing: it may be mounted later
    except OSError as e:
        return f"cannot be looked up: {e.strerror}"
    if stat.S_ISREG(mode):
        return None
    return f"is {_kind(mode)}"


def replace_file(path, text, mode=0o644, keep=False):
    """Replace path with a file holding text, atomically: a reader (node_exporter's textfile
    collector, sysctl --system) sees the old file or the new one, never a part. Raises Unwritable.
    With keep, a file replaced keeps its owner, group and mode (a 0600 root:adm sysctl.d file
    stays so); mode is a new file's.

    path is checked again here, as it may have become a device, a FIFO or a symlink since guard
    started. The new file is made beside it (a rename does not cross file systems).

    The text is written as UTF-8 whatever the locale (the Prometheus exposition format is UTF-8),
    and bytes read with surrogateescape (a sysctl.d file with a Latin-1 comment) go back as they
    were: encoded before the file is made, so no encoding error can leave it behind.
    """
    import contextlib
    import tempfile  # here, not at the top: only a run that writes a file needs it

    problem = unfit_to_replace(path)
    if problem:
        raise Unwritable(path, f"it {problem}", unfit=True)
    data = text.encode("utf-8", errors="surrogateescape")
    try:
        existing = os.lstat(path) if keep else None
    except FileNotFoundError:
        existing = None
    except OSError as e:
        raise Unwritable(path, e.strerror) from None
    try:
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".guard-", suffix=".tmp")
    except OSError as e:
        raise Unwritable(path, e.strerror) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if existing is not None:  # the owner first: chown(2) clears set-user-ID and set-group-ID bits
                _keep_owner(f.fileno(), existing)
            # mkstemp makes it 0600; node_exporter and sysctl read as others
            os.fchmod(f.fileno(), stat.S_IMODE(existing.st_mode) if existing is not None else mode)
        os.replace(temp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise Unwritable(path, e.strerror) from None


def _keep_owner(fd, existing):
    try:
        os.fchown(fd, existing.st_uid, existing.st_gid)
    except OSError as e:
        raise OSError(e.errno, f"cannot keep its owner [{existing.st_uid}:{existing.st_gid}]: {e.strerror}") from None


# The resource limits guard knows, by the names ulimit(1), docker --ulimit and limits.conf use.
RLIMITS = {
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "memlock": "RLIMIT_MEMLOCK",
    "as": "RLIMIT_AS",
    "fsize": "RLIMIT_FSIZE",
    "core": "RLIMIT_CORE",
    "stack": "RLIMIT_STACK",
}


def _limit_value(raw):
    return UNLIMITED if raw == resource.RLIM_INFINITY else raw


def read_rlimit(name):
    """(soft, hard) of this process's limit; ``UNLIMITED`` for RLIM_INFINITY.

    guard execs the program in the same process, so the program inherits exactly these.
    """
    constant = getattr(resource, RLIMITS[name], None)
    if constant is None:
        raise Unreadable(f"{RLIMITS[name]} is not available on this platform")
    try:
        soft, hard = resource.getrlimit(constant)
    except (OSError, ValueError) as e:
        raise Unreadable(f"getrlimit({RLIMITS[name]}) failed: {e}") from None
    return _limit_value(soft), _limit_value(hard)


# Network interfaces as the JVM's NetworkInterface sees them for Elasticsearch, asked of the
# kernel over rtnetlink(7) (as getifaddrs(3) does): no file is read, and a reply that does not
# come within the timeout is an error, not a wait.
Interface = record("Interface", "name up addresses")
NETLINK_TIMEOUT = 2.0
_RTM_GETLINK, _RTM_GETADDR = 18, 22
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_IFLA_IFNAME, _IFA_ADDRESS, _IFA_LOCAL = 3, 1, 2
# JDK NetworkInterface.isUp: both IFF_UP and IFF_RUNNING (netdevice(7)).
_IFF_UP_RUNNING = 0x1 | 0x40


def _netlink_dump(sock, kind, body, seq):
    """The bodies of the replies to one rtnetlink dump request."""
    import struct

    sock.send(struct.pack("=IHHII", 16 + len(body), kind, _NLM_F_REQUEST_DUMP, seq, 0) + body)
    while True:
        data, offset = sock.recv(1 << 16), 0
        while offset + 16 <= len(data):
            length, msg_type = struct.unpack_from("=IH", data, offset)
            if msg_type == _NLMSG_DONE:
                return
            if msg_type == _NLMSG_ERROR or length < 16:
                raise OSError(errno.EPROTO, "netlink error reply")
            yield data[offset + 16:offset + length]
            offset += (length + 3) & ~3


def _netlink_attributes(body, offset):
    import struct

    attributes = {}
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        attributes.setdefault(kind, body[offset + 4:offset + length])
        offset += (length + 3) & ~3
    return attributes


def network_interfaces():
    """Every interface (name, up, [ipaddress addresses]), or Unreadable with the reason."""
    import ipaddress
    import socket
    import struct

    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.settimeout(NETLINK_TIMEOUT)
            links = {}
            for body in _netlink_dump(sock, _RTM_GETLINK, bytes(16), 1):  # struct ifinfomsg
                _, _, index, flags, _ = struct.unpack_from("=BxHiII", body)
                name = _netlink_attributes(body, 16).get(_IFLA_IFNAME, b"").split(b"\0")[0]
                links[index] = Interface(os.fsdecode(name), flags & _IFF_UP_RUNNING == _IFF_UP_RUNNING, [])
            for body in _netlink_dump(sock, _RTM_GETADDR, bytes(8), 2):  # struct ifaddrmsg
                family, _, _, _, index = struct.unpack_from("=BBBBI", body)
                attributes = _netlink_attributes(body, 8)
                # IFA_LOCAL is the interface's own IPv4 address (IFA_ADDRESS the peer's on a
                # point-to-point link); IPv6 gives IFA_ADDRESS only.
                raw = attributes.get(_IFA_LOCAL) or attributes.get(_IFA_ADDRESS)
                if index in links and family in (socket.AF_INET, socket.AF_INET6) and len(raw or b"") in (4, 16):
                    links[index].addresses.append(ipaddress.ip_address(raw))
    except (OSError, struct.error) as e:
        raise Unreadable(f"cannot list the network interfaces (rtnetlink): {getattr(e, 'strerror', None) or e}")
    return list(links.values())


# A name server that does not answer would hold guard for resolv.conf's timeouts times its
# attempts; guard waits this long for all the names of a run together, then says so.
RESOLVE_TIMEOUT = 2.0

# The files a lookup opens (glibc: nss/nss_database.c, nss_files, resolv/res_init.c,
# resolv/res_hconf.c, getaddrinfo's gaiconf_init). A lookup that would open one that is not a
# regular file is not made: a FIFO there would hold it, or take what the program is to read.
# bundle/launcher.c leaves the name service switch as the image sets it when /etc/nsswitch.conf
# is not a regular file, for the same reason: no lookup is made then, so none loads the image's
# modules.
RESOLVER_FILES = ("/etc/nsswitch.conf", "/etc/host.conf", "/etc/hosts", "/etc/resolv.conf", "/etc/gai.conf")


def _unfit_resolver_file():
    """Unreadable for the first resolver file that exists and is not a regular file, or None."""
    for path in RESOLVER_FILES:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # missing or unreadable: the resolver does without it, as guard does
        if not stat.S_ISREG(mode):
            return _not_regular(path, mode)
    return None


def resolve_name(name, timeout=RESOLVE_TIMEOUT):
    """The addresses a host name resolves to (getaddrinfo, as the JVM's InetAddress does), or
    Unreadable: unknown, or no answer within the timeout (the lookup is left to finish alone)."""
    import ipaddress
    import signal
    import socket
    import threading

    unfit = _unfit_resolver_file()
    if unfit:
        raise Unreadable(f"[{name}] was not looked up: {unfit}")
    found = {}

    def lookup():
        try:
            found["addresses"] = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError, ValueError) as e:
            found["error"] = getattr(e, "strerror", None) or str(e) or type(e).__name__

    thread = threading.Thread(target=lookup, name="guard-resolve", daemon=True)
    # The lookup may outlive the wait, into guard --watch. A thread that leaves a signal unblocked
    # can be the one the kernel gives a signal sent to the process (signal(7)); the watch blocks
    # them in its own thread to take them with sigtimedwait(), and this one would die of SIGTERM
    # by default, ending guard. The thread is born with every signal blocked (it inherits the mask).
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    except RuntimeError as e:  # threads count against nproc: a user at the limit has none to spare
        raise Unreadable(f"cannot resolve [{name}]: no thread to wait for the lookup with: {e}") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    thread.join(timeout)
    if "addresses" in found:
        return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found["addresses"]]
    if "error" in found:
        raise Unreadable(f"cannot resolve [{name}]: {found['error']}")
    raise Unreadable(f"resolving [{name}] took more than [{timeout:.2g}] seconds")
