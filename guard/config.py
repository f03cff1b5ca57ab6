"""Reading the programs' own settings the way they take them: config files, flags, environment.

Only what the profiles need: Elasticsearch-style YAML (elasticsearch.yml), Java properties
(server.properties, sonar.properties), Redis's directive-per-line config with its includes.
Every file goes through host.read_bytes, so guard reads only regular files, never waits on a FIFO
and never takes what the program is to read. A file that cannot be read, or that the program
would refuse, gives a note saying which file and why, and its settings are left out: the
program's own defaults are judged instead.
"""

import os

from guard import host

# Each reader returns (what it read, notes). A note says what was not read and why, in the
# report's words: "config file: /x is a FIFO or pipe, ...; judged without its settings".
WITHOUT = "judged without its settings"


class Unparsable(Exception):
    """A file that was read but that the program would refuse; the message says where and why."""


def read_file(path, what, named=True):
    """(bytes or None, notes). A missing file is a note only when it was named (an argument, a
    variable): one looked for in its default place may well not exist, as for the program."""
    try:
        return host.read_bytes(path), []
    except host.Unreadable as e:
        return None, ([] if e.missing and not named else [f"{what}: {e}; {WITHOUT}"])


# --- YAML, flattened as Elasticsearch's Settings.fromXContent does ---

# Jackson's YAML parser, which Elasticsearch uses, reads only these plain words as null and as
# booleans (YAMLParser._matchYAMLBoolean): "yes", "on" or "1.0" stay the text they are.
YAML_NULLS = ("", "~", "null", "Null", "NULL")
YAML_BOOLEANS = {"true": "true", "True": "true", "TRUE": "true",
                 "false": "false", "False": "false", "FALSE": "false"}
# No file within host.FILE_LIMIT holds more entries (4 bytes each at least) unless aliases
# repeat a mapping: past this, the file is an alias bomb, not settings.
YAML_ENTRY_LIMIT = host.FILE_LIMIT // 4


def _line(node):
    return node.start_mark.line + 1


def _yaml_scalar(node, key):
    from yaml import ScalarNode

    if not isinstance(node, ScalarNode):
        raise Unparsable(f"[{key}] holds a list or mapping inside a list (line {_line(node)})")
    if node.style:  # quoted or a block scalar: text as written (plain is None, or "" from libyaml)
        return node.value
    if node.value in YAML_NULLS:
        raise Unparsable(f"[{key}] has no value (line {_line(node)})")
    return YAML_BOOLEANS.get(node.value, node.value)


def _yaml_root(data, first_document=False):
    """The root node of YAML text (of its first document only, when first_document), None when it
    is empty; Unparsable naming where the text is not YAML."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # CSafeLoader only with libyaml
    try:
        if first_document:
            return next(iter(yaml.compose_all(data, Loader=loader)), None)
        return yaml.compose(data, Loader=loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise Unparsable(f"not valid YAML ({e.problem or e.context}{where})") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise Unparsable(f"not valid YAML ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def flatten_yaml(data):
    """Settings from YAML text: nested keys joined with dots, lists kept as lists of strings,
    every value the text as written (Elasticsearch Settings.fromXContent: a number or a
    boolean is stored as its text, a list with putList). Unparsable names what the program
    refuses: invalid YAML, several documents, a duplicate key, a null value, a nested list."""
    import yaml

    root = _yaml_root(data)
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise Unparsable(f"the top level is not a mapping of settings (line {_line(root)})")
    settings, entries = {}, 0
    stack = [("", iter(root.value), set())]  # in document order: a later key wins, as in ES
    while stack:
        prefix, pairs, seen = stack[-1]
        pair = next(pairs, None)
        if pair is None:
            stack.pop()
            continue
        key_node, value = pair
        entries += 1
        if entries > YAML_ENTRY_LIMIT:
            raise Unparsable(f"more than [{YAML_ENTRY_LIMIT}] entries once aliases are expanded")
        if not isinstance(key_node, yaml.ScalarNode):
            raise Unparsable(f"a key at line {_line(key_node)} is a list or mapping, not a name")
        if key_node.value in seen:  # Jackson's STRICT_DUPLICATE_DETECTION, on in Elasticsearch
            raise Unparsable(f"duplicate key [{prefix}{key_node.value}] at line {_line(key_node)}")
        seen.add(key_node.value)
        key = prefix + key_node.value
        if isinstance(value, yaml.MappingNode):
            stack.append((key + ".", iter(value.value), set()))
        elif isinstance(value, yaml.SequenceNode):
            entries += len(value.value)
            settings[key] = [_yaml_scalar(item, key) for item in value.value]
        else:
            settings[key] = _yaml_scalar(value, key)
    return settings


def yaml_top_level(data):
    """The (key, value) pairs of the top mapping of a YAML document, in document order with repeated
    keys kept, each value the scalar's text, or None for a null, a list or a mapping: the document
    as a reader that walks its top mapping sees it (ScyllaDB's config_file::read_from_yaml, with
    yaml-cpp, which reads the first document). Unparsable when the text is not YAML."""
    import yaml

    root = _yaml_root(data, first_document=True)
    if not isinstance(root, yaml.MappingNode):
        return []
    return [(key.value if isinstance(key, yaml.ScalarNode) else None,
             value.value if isinstance(value, yaml.ScalarNode) and (value.style or value.value not in YAML_NULLS)
             else None) for key, value in root.value]


def read_yaml_settings(path, what, named=False):
    """(settings, or None when the file was not read; notes)."""
    data, notes = read_file(path, what, named)
    if data is None:
        return None, notes
    try:
        return flatten_yaml(data), notes
    except Unparsable as e:
        return None, notes + [f"{what} [{path}] cannot be used: {e}; the program refuses it too; {WITHOUT}"]


# --- Java properties ---

# java.util.Properties.load: the whitespace it skips before a line, around a key and its
# separator; the escapes it reads in keys and values (loadConvert).
# The patterns are compiled where they are used (re keeps what it compiled): re is imported only
# by the profiles that read such files, not before every program's start.
_PROPERTIES_SPACE = " \t\f"
_PROPERTIES_KEY = r"(?:[^\\=: \t\f]|\\.)*"  # up to an unescaped = : or space (DOTALL)
_PROPERTIES_SEPARATOR = r"[ \t\f]*[=:]?[ \t\f]*"
_PROPERTIES_ESCAPE = r"\\(u[0-9a-fA-F]{4}|.)"  # (DOTALL)
_PROPERTIES_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "f": "\f"}


def _properties_lines(text):
    """The logical lines of a .properties text, as Properties.load's LineReader makes them: only
    CR, LF and CRLF end a line; leading whitespace is skipped on every line; blank lines, and #
    or ! comments where a logical line starts, are dropped; a line ending in an odd number of
    backslashes goes on at the next (that backslash dropped), up to a blank line or the end."""
    import re

    pieces, length = [], 0  # joined once the logical line ends: in linear time
    for natural in re.split(r"\r\n|\r|\n", text):
        piece = natural.lstrip(_PROPERTIES_SPACE)
        if not length and piece.startswith(("#", "!")):
            pieces = []  # a comment ends at its line, backslash or not
            continue
        if (len(piece) - len(piece.rstrip("\\"))) % 2:
            pieces.append(piece[:-1])
            length += len(piece) - 1
            continue
        if piece or length:
            yield "".join(pieces) + piece
        pieces, length = [], 0
    if length:
        yield "".join(pieces)


def _properties_text(escaped):
    """A key or value with its escapes read (Properties.loadConvert): \\uXXXX, \\t \\r \\n \\f,
    and any other character after a backslash as itself. Unparsable for a malformed \\u, which
    makes load throw."""
    def one(match):
        code = match.group(1)
        if code == "u":
            raise Unparsable("malformed \\uxxxx encoding")
        return chr(int(code[1:], 16)) if len(code) == 5 else _PROPERTIES_ESCAPES.get(code, code)

    if "\\" not in escaped:
        return escaped
    import re

    return re.sub(_PROPERTIES_ESCAPE, one, escaped, flags=re.DOTALL)


def parse_properties(text):
    """Java .properties as java.util.Properties.load reads them: ``key=value``, ``key: value`` or
    ``key value``, a later key winning; Unparsable when load would throw."""
    import re

    key, separator = re.compile(_PROPERTIES_KEY, re.DOTALL), re.compile(_PROPERTIES_SEPARATOR)
    settings = {}
    for line in _properties_lines(text):
        key_end = key.match(line).end()
        value_start = separator.match(line, key_end).end()
        settings[_properties_text(line[:key_end])] = _properties_text(line[value_start:])
    return settings


def read_properties(path, what, named=True):
    """(settings, notes); {} when the file was not read or the program would refuse it."""
    data, notes = read_file(path, what, named)
    if data is None:
        return {}, notes
    try:
        return parse_properties(data.decode("utf-8", errors="replace")), notes
    except Unparsable as e:
        return {}, notes + [f"{what} [{path}] cannot be used: {e}; the program refuses it too; {WITHOUT}"]


# --- Redis ---

_REDIS_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
_HEX = "0123456789abcdefABCDEF"
_C_SPACE = " \t\n\v\f\r"


def _redis_quoted(line, i, quote):
    """(the text of a quoted token starting after its quote at i, index past it) or None."""
    out, n = [], len(line)
    while i < n:
        c = line[i]
        if quote == '"' and c == "\\" and line[i + 1:i + 2] == "x" and len(line[i + 2:i + 4]) == 2 \
                and all(h in _HEX for h in line[i + 2:i + 4]):
            out.append(chr(int(line[i + 2:i + 4], 16)))
            i += 4
        elif quote == '"' and c == "\\" and i + 1 < n:
            out.append(_REDIS_ESCAPES.get(line[i + 1], line[i + 1]))
            i += 2
        elif quote == "'" and c == "\\" and line[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        elif c == quote:
            # the closing quote must be followed by a space or nothing at all
            return ("".join(out), i + 1) if i + 1 == n or line[i + 1] in _C_SPACE else None
        else:
            out.append(c)
            i += 1
    return None  # unterminated quotes


def split_redis_args(line):
    """The words of a Redis config line, or None for unbalanced quotes (sds.c sdssplitargs:
    "double quotes" take \\n, \\xHH and friends, 'single quotes' only \\', a token ends at a
    space, tab, CR or LF)."""
    if '"' not in line and "'" not in line:
        import re

        return re.findall(r"[^ \t\n\v\f\r][^ \t\r\n]*", line)
    words, i, n = [], 0, len(line)
    while True:
        while i < n and line[i] in _C_SPACE:
            i += 1
        if i >= n:
            return words
        token = []
        while i < n and line[i] not in " \t\r\n":
            if line[i] in "\"'":
                quoted = _redis_quoted(line, i + 1, line[i])
                if quoted is None:
                    return None
                token.append(quoted[0])
                i = quoted[1]
                break
            token.append(line[i])
            i += 1
        words.append("".join(token))


def redis_lines(text):
    """Directive lines as Redis keeps them (config.c loadServerConfigFromString): trimmed, no
    blank or # lines. Redis reads the file with fgets into a C string, so a NUL byte ends what
    it sees of that line."""
    for line in text.split("\n"):
        line = line.split("\0", 1)[0].strip(" \t\r\n")
        if line and not line.startswith("#"):
            yield line


# A chain of includes is followed without recursion, as deep as it goes, up to these: the
# whole configuration in host.FILE_LIMIT bytes, in at most this many files.
REDIS_INCLUDE_FILES = 4096


def _include_targets(pattern):
    """The files an include names: Redis globs a name with * ? or [ (sorted, as glob(3) returns
    them; none matching is no error), and opens any other name as it is."""
    if not any(c in pattern for c in "*?["):
        return [pattern]
    import glob

    try:
        return sorted(glob.glob(pattern))
    except ValueError:  # a NUL byte (a "\x00" escape) in the pattern: nothing matches
        return []


def _real(path):
    try:
        return os.path.realpath(path)
    except ValueError:  # a NUL byte in the name: read_bytes says so
        return path


def redis_directives(config_file, option_directives, notes):
    """(name, [args]) in the order Redis applies them: the config file with its includes
    expanded where they stand, then the command line's options (config.c loadServerConfig).
    What cannot be followed or split is a note, once per file and reason; a cycle is followed
    once."""
    directives, files, budget, said, unbalanced = [], 0, host.FILE_LIMIT, {}, {}
    items = [("words", words) for words in option_directives]
    if config_file is not None:  # globbed as an include is: config.c loadServerConfig reads both
        items[:0] = [("file", target, "config file") for target in _include_targets(config_file)]
    stack = [(None, iter(items))]  # (real path of the file being read, its remaining items)
    while stack:
        item = next(stack[-1][1], None)
        if item is None:
            stack.pop()
            continue
        if item[0] == "file":
            path, what = item[1], item[2]
            real = _real(path)
            if real in (frame[0] for frame in stack):
                said[f"{what} [{path}] includes itself: redis-server would never finish reading it; "
                     "followed once"] = True
                continue
            files += 1
            if files > REDIS_INCLUDE_FILES or budget <= 0:
                said[f"more than [{REDIS_INCLUDE_FILES}] files or [{host.FILE_LIMIT}] bytes of configuration: "
                     f"the includes past them are {WITHOUT}"] = True
                continue
            try:
                data = host.read_bytes(path, limit=budget)
            except host.Unreadable as e:
                said[f"{what}: {e}; {WITHOUT}"] = True
                continue
            budget -= len(data)
            # surrogateescape: a path in the file (an include) keeps its exact bytes.
            lines = redis_lines(data.decode("utf-8", errors="surrogateescape"))
            stack.append((real, (("line", line, path) for line in lines)))
            continue
        words = split_redis_args(item[1]) if item[0] == "line" else item[1]
        if words is None:
            unbalanced.setdefault(item[2], [0, item[1]])[0] += 1
            continue
        if not words:
            continue
        name, args = words[0].lower(), words[1:]
        if name == "include" and len(args) == 1:
            targets = _include_targets(args[0])
            stack.append((None, (("file", target, "included file") for target in targets)))
        else:
            directives.append((name, args))
    notes += list(said)
    notes += [f"config file [{path}] has [{count}] line(s) with unbalanced quotes, the first [{first}]: "
              "redis-server refuses it; those lines are left out" for path, (count, first) in unbalanced.items()]
    return directives
