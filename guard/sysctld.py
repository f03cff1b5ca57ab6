"""sysctl.d files as the boot applies them: which files, in which order, and what each line sets.

At boot systemd-sysctl (systemd-sysctl.service) or procps' `sysctl --system` reads the folders
of FOLDERS, in that order; a file name found in an earlier folder hides the same name in later
ones (systemd's /etc/sysctl.d/NAME.conf -> /dev/null masks a vendor's file); every file kept is
applied in the order of its name (strcmp), whatever folder holds it, and a later assignment of a
key wins (procps sysctl.c PreloadSystem, systemd sysctl.d(5)). procps then applies
/etc/sysctl.conf last of all; systemd-sysctl reads it only through Debian's and Ubuntu's
/etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf.

guard fix --persist keeps its values in a file named to sort after those (fixes.sysctl_d_file),
never lower than any line the boot applies for the same key, and says which lines applied after
its file would set a lower value.
"""

import contextlib
import os
import re

from guard import host
from guard.records import record

# Where the boot reads sysctl.d files, under the root (procps sysctl.c PreloadSystem; systemd's
# CONF_PATHS("sysctl.d"), /lib/sysctl.d on split-/usr systems), and the file procps applies last.
FOLDERS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")
SYSCTL_CONF = "etc/sysctl.conf"

# isspace() in the C locale: what procps' lstrip and rstrip take off a line and a value.
SPACE = " \t\n\v\f\r"

# A value as the kernel reads it (kernel/sysctl.c proc_get_long: spaces skipped, an optional '-',
# digits in C's base 0 (0x.. hexadecimal, 0.. octal), then the end or ' ', '\t' or '\n'; what
# follows is left unread: `1048576 # keep high` sets 1048576). Any other value is refused (EINVAL)
# and the line sets nothing; this is what `sysctl -p` does with such lines on Linux 6.
_KERNEL_NUMBER = re.compile(r"[ \t\n\v\f\r]*(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(?=[ \t\n]|$)")


def _number(match):
    if not match or len(match.group(1) + match.group(2)) > 20:  # proc_get_long: 21 characters are refused
        return None
    digits = match.group(2)
    number = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits, 8) if digits[0] == "0" else int(digits)
    if number >= 1 << 64:  # strtoul_lenient: beyond an unsigned long, refused
        return None
    return -number if match.group(1) else number


class Setting(record("Setting", "key value number start end")):
    """One assignment: key (dotted), value (the text written to the kernel), number (what the
    kernel sets from it, None when nothing), start and end: where the number is in the line (the
    whole value when there is none), to replace it alone and keep a comment after it."""

    __slots__ = ()


def setting(line):
    """The assignment a line makes, as procps' parse_setting_line reads it, or None: a comment
    ('#' or ';' first), a blank, a line without '=', or a glob. A leading '-' (ignore a failure)
    and '/' for '.' in the key are spellings of the same key. A glob (vm.*) is left out: it never
    sets a key that a line names explicitly (procps settinglist_findpath, systemd-sysctl), and
    guard's file names each of its keys."""
    text = line.lstrip(SPACE)
    if not text or text[0] in "#;" or "=" not in text:
        return None
    name, _, rest = text.partition("=")
    # procps keeps a space after the '-' in the key (and so fails it), systemd-sysctl strips it:
    # taken as set, so that no line either applies is missed.
    key = host.sysctl_name((name[1:] if name.startswith("-") else name).strip(SPACE))
    if not key or any(c in key for c in "*?["):
        return None
    value = rest.strip(SPACE)
    start = len(line) - len(text) + len(name) + 1 + (len(rest) - len(rest.lstrip(SPACE)))
    match = _KERNEL_NUMBER.match(value)
    number = _number(match)
    if number is None:
        return Setting(key, value, None, start, start + len(value))
    return Setting(key, value, number, start + match.start(1), start + match.end(2))


def lines_of(text):
    """The lines of a file as getline(3) reads them, each with its own ending ('\\n', '\\r\\n', or
    none for the last): split at '\\n' only, not at the other breaks str.splitlines() knows."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def newline_of(text):
    """The line ending a file uses: CRLF when its first line ends so, else LF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


Source = record("Source", "path settings trouble")


def _read(path, root):
    """A file's settings as a Source; a file that cannot be read gives none, with why (a link to
    /dev/null, systemd's mask, is no trouble: it sets nothing). Only a regular file is read."""
    target = path
    with contextlib.suppress(OSError):
        link = os.readlink(path)
        if link == os.devnull:
            return Source(path, [], None)
        if os.path.isabs(link) and root not in (None, "/"):  # the node's absolute link, under its root
            target = os.path.join(root, link.lstrip("/"))
    try:
        text = host.read_bytes(target).decode("utf-8", errors="surrogateescape")
    except host.Unreadable as e:
        return Source(path, [], None if e.missing else str(e))
    return Source(path, [s for s in map(setting, text.split("\n")) if s], None)


def boot_order(written, name, root):
    """(the Sources applied before the file written/name, the ones applied after it), as the boot
    reads them. written: the folder guard writes (in place of ROOT/etc/sysctl.d); root: where the
    other folders are, None when they are not to be seen from here (only written is read)."""
    folders = [written] + ([os.path.join(root, folder) for folder in FOLDERS[1:]] if root else [])
    found = {}
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".conf") and entry not in found:
                found[entry] = os.path.join(folder, entry)
    found[name] = os.path.join(written, name)
    before, after = [], []
    for entry in sorted(found, key=os.fsencode):  # strcmp order: bytes, not the locale's
        if entry != name:
            (before if os.fsencode(entry) < os.fsencode(name) else after).append(_read(found[entry], root))
    if root:
        after.append(_read(os.path.join(root, SYSCTL_CONF), root))
    return before, after
