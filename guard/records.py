"""Records: named tuples made without the collections module.

guard runs before every start of the program it guards, so its start-up is the program's. Its
records were collections.namedtuple classes: importing collections and making the classes (each
compiles its __new__ from source with eval) took a third of guard's own start. A record here is
the same kind of class, a tuple with a name for each field, made from functions written once.
"""

import sys
from _operator import itemgetter  # the C module: operator's Python wrapper is more to import

_MISSING = object()


def record(typename, field_names, defaults=()):
    """A tuple subclass named typename whose fields are field_names (a space-separated string),
    the last len(defaults) of them with those defaults (field_names may be a sequence of names too): constructed by position or by keyword,
    read by name, and copied with changes by _replace(), as collections.namedtuple's are."""
    fields = tuple(field_names.split() if isinstance(field_names, str) else field_names)
    given_defaults = dict(zip(fields[len(fields) - len(defaults):], defaults))
    positions = {name: i for i, name in enumerate(fields)}

    def __new__(cls, *args, **kwargs):
        if len(args) > len(fields):
            raise TypeError(f"{typename}() takes {len(fields)} arguments but {len(args)} were given")
        values = list(args) + [_MISSING] * (len(fields) - len(args))
        for name, value in kwargs.items():
            if name not in positions:
                raise TypeError(f"{typename}() got an unexpected keyword argument {name!r}")
            if values[positions[name]] is not _MISSING:
                raise TypeError(f"{typename}() got multiple values for argument {name!r}")
            values[positions[name]] = value
        for i, value in enumerate(values):
            if value is _MISSING:
                if fields[i] not in given_defaults:
                    raise TypeError(f"{typename}() missing required argument {fields[i]!r}")
                values[i] = given_defaults[fields[i]]
        return tuple.__new__(cls, values)

    def _replace(self, **changes):
        """A copy with the fields named changed (as namedtuple's, without calling __new__ again)."""
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"got unexpected field names: {sorted(unknown)!r}")
        return tuple.__new__(type(self), [changes.get(name, value) for name, value in zip(fields, self)])

    def _asdict(self):
        return dict(zip(fields, self))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in zip(fields, self))})"

    def __getnewargs__(self):
        return tuple(self)

    namespace = {"__module__": sys._getframe(1).f_globals.get("__name__", __name__), "__slots__": (), "_fields": fields, "__new__": __new__, "_replace": _replace,
                 "_asdict": _asdict, "__repr__": __repr__, "__getnewargs__": __getnewargs__}
    for i, name in enumerate(fields):
        namespace[name] = property(itemgetter(i), doc=f"field {i}: {name}")
    return type(typename, (tuple,), namespace)
