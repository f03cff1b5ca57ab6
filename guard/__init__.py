"""guard: check the host before a program that needs host limits starts, then exec it."""

__version__ = "0.1.0"
