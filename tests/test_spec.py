import contextlib
import re
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard import checks, cli
from guard.checks import SpecError, parse_spec
from guard.host import UNLIMITED


@pytest.mark.parametrize("text,key,op,value", [
    ("vm.max_map_count>=262144", "vm.max_map_count", ">=", 262144),
    ("nofile>=65535", "nofile", ">=", 65535),
    ("nofile.hard >= 65535", "nofile.hard", ">=", 65535),
    ("vm.overcommit_memory=1", "vm.overcommit_memory", "=", 1),
    ("transparent_hugepage!=always", "transparent_hugepage", "!=", "always"),
    ("memlock>=unlimited", "memlock", ">=", UNLIMITED),
    ("memlock>=-1", "memlock", ">=", UNLIMITED),
    ("vm.swappiness<=1", "vm.swappiness", "<=", 1),
    ("vm/max_map_count>=5", "vm.max_map_count", ">=", 5),
    # A VLAN's dot within a component: "/" in the dotted form, as sysctl(8) writes it.
    ("net/ipv4/conf/eth0.100/forwarding=1", "net.ipv4.conf.eth0/100.forwarding", "=", 1),
    ("net.ipv4.conf.eth0/100.forwarding=1", "net.ipv4.conf.eth0/100.forwarding", "=", 1),
    ("net.ipv4.tcp_congestion_control=bbr", "net.ipv4.tcp_congestion_control", "=", "bbr"),
])
def test_valid_specs(text, key, op, value):
    req = parse_spec(text)
    assert (req.key, req.op, req.value) == (key, op, value)


@pytest.mark.parametrize("text,named", [
    ("vm.max_map_count", "vm.max_map_count"),
    ("vm.max_map_count>>5", "vm.max_map_count>>5"),
    ("nofile>=lots", "lots"),
    ("nofile.medium>=5", ".medium"),
    ("transparent_hugepage=sometimes", "sometimes"),
    ("transparent_hugepage>=always", "always"),
    ("vm.max_map_count>=unlimited", "unlimited"),
    ("maxmapcount>=5", "maxmapcount"),
    ("nofile>=-5", "-5"),
    ("", "[]"),
    ("vm/../../x>=1", "vm/../../x"),  # out of /proc/sys
    ("vm.//.//.x>=1", "vm.//.//.x"),
    ("net/ipv4/./conf/all/forwarding=1", "net/ipv4/./conf/all/forwarding"),
])
def test_malformed_specs_name_the_bad_value(text, named):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert named in str(info.value)


SPEC_ALPHABET = st.characters(codec="utf-8", exclude_characters="\x00")


@settings(max_examples=400, deadline=None)
@given(st.text(SPEC_ALPHABET, max_size=40))
def test_no_spec_text_crashes_the_parser(text):
    try:
        req = parse_spec(text)
    except SpecError as e:
        assert str(e)
    else:
        assert req.op in (">=", "<=", "=", "!=")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["vm.max_map_count", "nofile", "nofile.hard", "transparent_hugepage", "fsize", "net.core.somaxconn"]),
       st.sampled_from([">=", "<=", "=", "!=", "=>", "=="]),
       st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(["unlimited", "always", "never", "x y", ""])))
def test_structured_specs_parse_or_fail_cleanly(key, op, value):
    try:
        req = parse_spec(f"{key}{op}{value}")
    except SpecError:
        return
    assert req.key == key


OPTION_ENV = [o.env for o in cli.OPTIONS]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(OPTION_ENV), st.text(SPEC_ALPHABET, max_size=30), max_size=4))
def test_no_environment_value_crashes_option_parsing(environ):
    try:
        settings_ = cli.resolve(cli.parse_options("guard", [], with_watch=True), environ)
    except cli.UsageError as e:
        assert "[" in str(e)  # the bad value is named
    else:
        assert settings_["mode"] in ("enforce", "warn")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["--mode", "--profile", "--require", "--skip", "--format", "--quiet", "--",
                                 "redis-server", "enforce", "warn", "json", "nofile>=1", "x", "-E", "--watch",
                                 "--interval", "0", "-1", "1.5", "--place", "kubernetes"]), max_size=8))
def test_no_command_line_crashes_the_split(args):
    options, command = cli._split_at_command(args)
    assert options + (["--"] if len(options) + len(command) < len(args) else []) + command == args


WORDS = ["--profile", "--require", "--mode", "--skip", "--format", "--quiet", "--place", "--", "redis",
         "elasticsearch", "kafka", "none", "enforce", "warn", "json", "text", "nofile>=1", "x", "host",
         "vm.max_map_count>=1", "transparent_hugepage!=always", "redis-server", "--maxclients", "-E"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.text(SPEC_ALPHABET, max_size=12)), max_size=7),
       st.dictionaries(st.sampled_from(OPTION_ENV), st.text(SPEC_ALPHABET, max_size=20), max_size=3))
def test_no_check_command_line_or_environment_crashes_guard(args, environ):
    """guard check never execs, so any input can run in-process: 0, 2 or 78, never an internal error."""
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(["check", *args])
            except SystemExit as e:  # argparse's own usage errors
                code = e.code
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert code in (0, 2, 78), err.getvalue()
    assert "internal error" not in err.getvalue()


@pytest.mark.parametrize("number, shown", [
    ("18446744073709551616", "[18446744073709551616]"),  # 1 << 64
    ("-9223372036854775809", "[-9223372036854775809]"),  # below -(1 << 63)
    ("9" * 4301, f"[{'9' * 20}...] (4301 digits)"),  # past Python's int-string limit
])
def test_number_beyond_64_bits_is_a_spec_error_naming_it(number, shown):
    with pytest.raises(SpecError) as info:
        parse_spec(f"vm.max_map_count>={number}")
    assert str(info.value) == ("[vm.max_map_count] takes a number of 64 bits at most, as the kernel keeps "
                               f"its values, but was given {shown}")


@pytest.mark.parametrize("number, value", [("18446744073709551615", (1 << 64) - 1), ("-9223372036854775808", -(1 << 63)),
                                           ("0" * 5000 + "7", 7)])
def test_numbers_within_64_bits_parse_however_many_leading_zeros(number, value):
    assert parse_spec(f"vm.max_map_count>={number}").value == value


OPTION_WORDS = ["--mode", "--profile", "--require", "--skip", "--format", "--quiet", "--watch", "--interval",
                "--place", "--dry-run", "--persist", "--every", "--metrics-file", "--watch-cpu", "--mode=warn",
                "--quiet=1", "--prof", "-q", "--require=nofile>=1", "--profile=", "warn", "redis", "json",
                "nofile>=1", "-1", "-x", "1.5", "", "=", "--"]


def _outcome(parse):
    """What parsing gives: the values, or the exit code and what was printed (help, an error)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return parse()
    except SystemExit as e:
        return e.code, out.getvalue(), err.getvalue()


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(OPTION_WORDS), max_size=6), st.sampled_from(["guard", "check", "fix"]))
def test_options_read_without_argparse_are_read_as_argparse_reads_them(args, command):
    # guard reads the usual option lists itself (argparse's set-up costs a fifth of its start);
    # whatever it reads must be what argparse would have made of the same words.
    prog = "guard" if command == "guard" else f"guard {command}"
    kinds = {"with_watch": command == "guard", "fix": command == "fix"}
    ours = _outcome(lambda: cli.parse_options(prog, list(args), **kinds))
    theirs = _outcome(lambda: vars(cli.build_parser(prog, **kinds).parse_args(list(args))))
    if isinstance(theirs, dict):
        assert ours == theirs
    else:
        assert not isinstance(ours, dict) and ours[0] == theirs[0]


# The grammar as regular expressions, as guard read it before it read SPECs with str methods (to
# keep re out of its start-up): the oracle the str reading must agree with.
SPEC_RE = re.compile(r"^\s*([A-Za-z0-9_.\-/]+?)\s*(>=|<=|!=|=)\s*(\S+?)\s*$")
KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-/]+)*$")
CLIMBS_RE = re.compile(r"(^|\.)/+(\.|$)")
WORD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
GRAMMAR_ALPHABET = "av._-/0 9<>=!\t\n\u00a0\u2028é"


@settings(max_examples=3000, deadline=None)
@given(st.text(GRAMMAR_ALPHABET, max_size=14))
def test_the_spec_grammar_read_with_str_methods_is_the_regular_expressions(text):
    match = SPEC_RE.match(text)
    assert checks._split_spec(text) == (match.groups() if match else None)
    # KEY and WORD were matched against what SPEC had stripped: "$" before a last newline never came up
    assert checks._is_key(text) == bool(KEY_RE.fullmatch(text))
    if checks._is_key(text):  # as parse_spec asks it: of a key
        assert checks._climbs(text) == bool(CLIMBS_RE.search(text))
    assert checks._is_word(text) == bool(WORD_RE.fullmatch(text))
