"""Reading the programs' own settings the way they take them: config files, flags, environment.

Only what the profiles need: flat ``key: value`` YAML (elasticsearch.yml), Java properties
(server.properties), Redis's directive-per-line config. Every reader returns {} for a file it
cannot read: a setting guard cannot see leaves the program's documented default in force.
"""

import os
import re


def _lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return None


def _unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def read_yaml_settings(path):
    """Dotted settings from an Elasticsearch-style YAML file.

    Handles both ``discovery.type: single-node`` and the nested form
    ``discovery:`` / ``  type: single-node``, as Elasticsearch flattens nested keys. A block list
    (``- 127.0.0.1`` lines) becomes one comma-separated value; a flow list stays as written
    (``["127.0.0.1", "::1"]``); multi-line values are not read.
    """
    lines = _lines(path)
    if lines is None:
        return {}
    settings, stack = {}, []  # stack of (indent, key prefix)
    for raw in lines:
        line = re.sub(r"\s+#.*$", "", raw).rstrip()
        item = line.strip()
        if not item or item.startswith("#") or item == "---":
            continue
        if item.startswith("- ") and stack:  # a block list item: kept comma-joined, as -E takes lists
            key = stack[-1][1]
            settings[key] = ",".join(filter(None, [settings.get(key), _unquote(item[2:])]))
            continue
        indent = len(line) - len(line.lstrip())
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        full = ".".join(([stack[-1][1]] if stack else []) + [_unquote(key)])
        if value.strip():
            settings[full] = _unquote(value)
        else:
            stack.append((indent, full))
    return settings


def read_properties(path):
    """Java .properties: ``key=value`` or ``key: value``, # and ! comments, \\ continuations."""
    lines = _lines(path)
    if lines is None:
        return {}
    settings, pending = {}, ""
    for raw in lines:
        if not pending and raw.strip().startswith(("#", "!")):
            continue  # a comment ends at its line, backslash or not (java.util.Properties.load)
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        if not line:
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if match:
            settings[match.group(1)] = match.group(2).strip()
    return settings


def read_redis_config(path, _seen=None):
    """Redis directives in file order as (name, [args]), following ``include`` like Redis does."""
    seen = _seen if _seen is not None else set()
    real = os.path.realpath(path)
    if real in seen:
        return []
    seen.add(real)
    lines = _lines(path)
    if lines is None:
        return []
    directives = []
    for raw in lines:
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        name, args = words[0].lower(), [_unquote(w) for w in words[1:]]
        if name == "include" and args:
            directives += read_redis_config(args[0], seen)
        else:
            directives.append((name, args))
    return directives
