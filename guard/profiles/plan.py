"""What a profile is given (the command and its environment) and what it gives back (a plan)."""

import collections


class Invocation(collections.namedtuple("Invocation", "argv environ")):
    """The command guard is about to start, and its environment: where settings come from."""

    __slots__ = ()

    def __new__(cls, argv=(), environ=None):
        return super().__new__(cls, tuple(argv), dict(environ or {}))


# requirements, and notes: how the configuration shaped them, shown in the report.
Plan = collections.namedtuple("Plan", "requirements notes")


class Profile(collections.namedtuple("Profile", "name summary commands build")):
    """commands: basenames of the commands that select this profile; build: Invocation -> Plan."""

    __slots__ = ()

    def plan(self, invocation):
        return self.build(invocation)
