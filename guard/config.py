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
    ``discovery:\\n  type: single-node``; lists and multi-line values are ignored (no setting
    guard reads is a list). Elasticsearch flattens nested keys the same way.
    """
    lines = _lines(path)
    if lines is None:
        return {}
    settings, stack = {}, []  # stack of (indent, key prefix)
    for raw in lines:
        line = re.sub(r"\s+#.*$", "", raw).rstrip()
        if not line.strip() or line.lstrip().startswith(("#", "-", "---")):
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
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        if not line or line.startswith(("#", "!")):
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
