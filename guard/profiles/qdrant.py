"""Qdrant: the open files its docs advise. It checks no host limit at start."""

from guard.checks import Requirement
from guard.profiles.plan import Plan

# Qdrant docs, Common errors, "Too many files open (OS error 24)": docker run --ulimit
# nofile=10000:10000. Qdrant does not raise its soft limit itself; short of it, segments fail to
# open under load.
QDRANT_FILES = 10000


def qdrant_plan(invocation):
    return Plan([
        Requirement("nofile", ">=", QDRANT_FILES, False, name="open-files",
                    source="Qdrant docs, Common errors: Too many files open (OS error 24), nofile 10000"),
    ], [])
