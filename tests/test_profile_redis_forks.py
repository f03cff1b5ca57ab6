"""Valkey and KeyDB: Redis's start-up checks as each fork keeps them, in its own words.
(tests/integration/test_valkey.py holds a real valkey-server to the same verdicts.)"""

import json
import os
import subprocess

import pytest

from guard import profiles
from guard.profiles import Invocation
from support import crafted_proc, run_guard, text


def plan(name, *args, env=None):
    return profiles.PROFILES[name].plan(Invocation((profiles.PROFILES[name].commands[0], *args), env or {}))


def by_name(p):
    return {r.name: r for r in p.requirements}


@pytest.mark.parametrize("name", ["valkey", "keydb"])
def test_defaults_are_redis_7s_with_the_forks_name_in_every_source(name):
    p = plan(name)
    reqs = by_name(p)
    assert (reqs["somaxconn"].value, reqs["open-files"].value, reqs["open-files-to-start"].value) == (511, 10032, 33)
    assert not any(r.hard for r in p.requirements if r.name != "open-files-to-start")
    fork = {"valkey": "Valkey", "keydb": "KeyDB"}[name]
    assert all(r.source.startswith(fork) for r in p.requirements)
    assert p.notes == [f"disable-thp yes: {fork} turns THP off for itself, the THP check is dropped"]


def test_valkey_warns_unless_overcommit_is_1_keydb_only_when_it_is_0():
    valkey, keydb = by_name(plan("valkey"))["overcommit"], by_name(plan("keydb"))["overcommit"]
    assert (valkey.op, valkey.value, keydb.op, keydb.value) == ("=", 1, "!=", 0)


@pytest.mark.parametrize("overcommit,valkey,keydb", [(0, "warn", "warn"), (1, "pass", "pass"), (2, "warn", "pass")])
def test_overcommit_2_is_a_warning_for_valkey_not_for_keydb(tmp_path, overcommit, valkey, keydb):
    env = {"GUARD_PROCFS": crafted_proc(tmp_path, {"vm.overcommit_memory": overcommit}), "GUARD_FORMAT": "json"}
    for name, status in (("valkey", valkey), ("keydb", keydb)):
        done = run_guard("check", "--profile", name, "--skip", "somaxconn", "--skip", "open-files",
                         "--skip", "open-files-to-start", env=env)
        assert f'"status": "{status}"' in done.stdout.decode(), (name, done.stdout)


def test_keydb_counts_256_more_files_with_the_flash_storage_provider(tmp_path):
    conf = tmp_path / "keydb.conf"
    conf.write_text("maxclients 1000\nstorage-provider flash /data/flash\n")
    reqs = by_name(plan("keydb", str(conf)))
    assert reqs["open-files"].value == 1000 + 32 + 256
    assert reqs["open-files"].source.endswith("maxclients [1000] + 32 + 256 for the flash storage provider")
    assert by_name(plan("keydb", "--maxclients", "1000", "--storage-provider", "test"))["open-files"].value == 1032


@pytest.mark.parametrize("name", ["valkey", "keydb"])
def test_the_forks_read_their_settings_as_redis_does(tmp_path, name):
    conf = tmp_path / "server.conf"
    conf.write_text("maxclients 50000\ntcp-backlog 1024\ndisable-thp no\n")
    p = plan(name, str(conf), "--maxclients", "20")
    reqs = by_name(p)
    assert (reqs["open-files"].value, reqs["somaxconn"].value, reqs["transparent-hugepage"].value) == (52, 1024,
                                                                                                      "always")
    refused = plan(name, "--tcp-backlog", "1e3").notes[0]
    assert refused.startswith(f"tcp-backlog [1e3] must be a whole number from [0] to [2147483647]: "
                              f"{name}-server refuses it")


# open-files-to-start: with 32 or fewer no file is left for a client and Valkey exits; open-files:
# maxclients [10000] + 32, below which it only serves fewer clients.
@pytest.mark.parametrize("limit,to_start,open_files", [(32, "fail", "warn"), (33, "pass", "warn"),
                                                        (10031, "pass", "warn"), (10032, "pass", "pass")])
def test_valkey_refuses_only_where_no_file_would_be_left_for_a_client(limit, to_start, open_files):
    done = run_guard("check", "--profile", "valkey", "--format", "json", "--skip", "somaxconn", "--skip", "overcommit",
                     limits={"nofile": (limit, limit)})
    assert done.returncode == (78 if to_start == "fail" else 0), text(done)
    statuses = {check["name"]: check["status"] for check in json.loads(done.stdout)["checks"]}
    assert (statuses["open-files-to-start"], statuses["open-files"]) == (to_start, open_files), statuses


def test_valkey_on_arm64_says_it_tests_the_kernel_itself(monkeypatch):
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "6.1.0", "#1", "aarch64")))
    assert plan("valkey").notes[-1].endswith("and exits if it has it, unless told ignore-warnings ARM64-COW-BUG: "
                                             "guard does not repeat the test")
    assert "ignore-warnings ARM64-COW-BUG lets it run on" in plan("valkey", "--ignore-warnings",
                                                                  "ARM64-COW-BUG").notes[-1]


# The Valkey image's entrypoint appends $VALKEY_EXTRA_FLAGS, unquoted, to the command it starts.
# This stand-in does what that line does; one that never names the variable does not.
APPENDS_EXTRA_FLAGS = '#!/bin/sh\nexec "$@" $VALKEY_EXTRA_FLAGS\n'
IGNORES_EXTRA_FLAGS = '#!/bin/sh\nexec "$@"\n'


def entrypoint(folder, script=APPENDS_EXTRA_FLAGS):
    folder.mkdir(exist_ok=True)
    path = folder / "docker-entrypoint.sh"
    path.write_text(script)
    path.chmod(0o755)
    return str(folder)


def through(argv, environ, name="valkey"):
    """The plan of the command as guard's prefix and check see it, launchers and all."""
    return profiles.PROFILES[name].plan(profiles.invocation(profiles.PROFILES[name], argv, environ))


def what_sh_gives(argv, environ, cwd):
    """The words the command's last program gets, run for real: each launcher in argv, then a
    shell that prints its arguments, one a line."""
    each_word = 'for word do printf "%s\\n" "$word"; done'
    done = subprocess.run([*argv, "/bin/sh", "-c", each_word, "sh"], env=environ, capture_output=True, check=True,
                          cwd=cwd)
    return done.stdout.decode().splitlines()


@pytest.mark.parametrize("value", ["--maxclients 60000", "  --maxclients\t60000\n --tcp-backlog  1024 ",
                                   "--requirepass s3cret --maxclients 60000"])
def test_valkey_reads_the_flags_the_images_entrypoint_appends_as_sh_splits_them(tmp_path, value):
    folder = entrypoint(tmp_path / "bin")
    environ = {"PATH": f"{folder}:/usr/bin:/bin", "VALKEY_EXTRA_FLAGS": value}
    p = through(["docker-entrypoint.sh", "valkey-server", "--save", ""], environ)
    assert by_name(p)["open-files"].value == 60032
    words = what_sh_gives(["docker-entrypoint.sh"], environ, tmp_path)
    assert p.notes[0] == (f"VALKEY_EXTRA_FLAGS: {folder}/docker-entrypoint.sh appends its {len(words)} words to "
                          "the command; judged with them")
    assert by_name(p)["somaxconn"].value == (1024 if "1024" in words else 511)
    assert "s3cret" not in " ".join(p.notes)  # where the image's users put --requirepass


def test_the_flags_count_for_redis_server_too_which_is_valkey_in_its_image(tmp_path):
    environ = {"PATH": entrypoint(tmp_path / "bin"), "VALKEY_EXTRA_FLAGS": "--maxclients 100"}
    assert by_name(through(["docker-entrypoint.sh", "redis-server"], environ, "redis"))["open-files"].value == 132


def test_valkey_takes_the_flags_only_where_an_entrypoint_appends_them(tmp_path):
    environ = {"PATH": entrypoint(tmp_path / "bin", IGNORES_EXTRA_FLAGS), "VALKEY_EXTRA_FLAGS": "--maxclients 60000"}
    p = through(["docker-entrypoint.sh", "valkey-server"], environ)
    assert (by_name(p)["open-files"].value, p.notes[0].startswith("VALKEY_EXTRA_FLAGS")) == (10032, False)
    environ["PATH"] = entrypoint(tmp_path / "bin")
    blank = through(["docker-entrypoint.sh", "valkey-server"], {**environ, "VALKEY_EXTRA_FLAGS": " \t"})
    assert what_sh_gives(["docker-entrypoint.sh"], {**environ, "VALKEY_EXTRA_FLAGS": " \t"}, tmp_path) == []
    assert blank.notes[0].startswith("disable-thp")
    # valkey-server started with no entrypoint never sees the variable
    assert by_name(through(["valkey-server"], environ))["open-files"].value == 10032


@pytest.mark.parametrize("argv,environ", [
    # env in front changes what the entrypoint sees, clusters and all
    (["env", "-u", "VALKEY_EXTRA_FLAGS", "ep/docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    (["env", "-vi", "ep/docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    (["env", "VALKEY_EXTRA_FLAGS=--maxclients 300", "ep/docker-entrypoint.sh",
      "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], {}),
    (["setpriv", "--reset-env", "ep/docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    # env -C: a relative entrypoint, and a relative PATH, from the new folder; the last -C wins
    (["env", "-C", "ep", "./docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    (["env", "-C", "ep", "-C", "ep", "./docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    (["env", "-C", "ep", "PATH=.:/usr/bin:/bin", "docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    # long options as getopt_long reads them: any prefix that names one alone
    (["env", "--unse=VALKEY_EXTRA_FLAGS", "ep/docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    (["env", "--ch=ep", "./docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    (["setpriv", "--reset", "--reuid=00", "ep/docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 300"}),
    # every entrypoint that appends does, each with what it sees: the last one's words come last
    (["ep/docker-entrypoint.sh", "env", "VALKEY_EXTRA_FLAGS=--maxclients 300", "ep/docker-entrypoint.sh"],
     {"VALKEY_EXTRA_FLAGS": "--maxclients 100"}),
    (["ep/docker-entrypoint.sh", "env", "VALKEY_EXTRA_FLAGS=--maxclients 300", "ignores/docker-entrypoint.sh"],
     {"VALKEY_EXTRA_FLAGS": "--maxclients 100"}),
    (["ignores/docker-entrypoint.sh", "ep/docker-entrypoint.sh"], {"VALKEY_EXTRA_FLAGS": "--maxclients 100"}),
])
def test_valkey_is_judged_on_the_words_the_launchers_really_give_it(tmp_path, argv, environ):
    entrypoint(tmp_path / "ep")
    entrypoint(tmp_path / "ignores", IGNORES_EXTRA_FLAGS)
    environ = {"PATH": "/usr/bin:/bin", **environ}
    given = what_sh_gives(argv, environ, tmp_path)  # the words valkey-server would get
    maxclients = int(given[given.index("--maxclients", len(given) - 2) + 1]) if "--maxclients" in given else 10000
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        p = through([*argv, "valkey-server"], environ)
    finally:
        os.chdir(old)
    assert by_name(p)["open-files"].value == maxclients + 32, (given, p.notes)


def test_valkey_says_when_it_cannot_tell_whether_the_entrypoint_appends_the_flags(tmp_path):
    environ = {"PATH": str(tmp_path), "VALKEY_EXTRA_FLAGS": "--maxclients 60000"}
    missing = through(["docker-entrypoint.sh", "valkey-server"], environ)
    assert missing.notes[0] == ("VALKEY_EXTRA_FLAGS is set, and whether docker-entrypoint.sh appends it to "
                                "the command is unknown: it is not found in PATH; judged without it")
    os.mkfifo(tmp_path / "fifo-entrypoint")
    other = through([str(tmp_path / "fifo-entrypoint"), "valkey-server"], environ)
    assert "fifo-entrypoint" not in other.notes[0]  # not named docker-entrypoint.sh: not the image's
    (tmp_path / "f").mkdir()
    os.mkfifo(tmp_path / "f" / "docker-entrypoint.sh")
    fifo = through([str(tmp_path / "f" / "docker-entrypoint.sh"), "valkey-server"], environ)
    assert "is a FIFO or pipe" in fifo.notes[0] and fifo.notes[0].endswith("; judged without it"), fifo.notes
    assert by_name(fifo)["open-files"].value == 10032
    rooted = through(["chroot", str(tmp_path), "/docker-entrypoint.sh", "valkey-server"], environ)
    assert rooted.notes[0].endswith(f"it runs under chroot [{tmp_path}]; judged without it")
    split = through(["env", "-S", "VALKEY_EXTRA_FLAGS=--requirepass s3cret", "valkey-server"], environ)
    assert split.notes[0] == ("env -S: guard does not split its string as env does (nor shows it: it may hold a "
                              "password); judged as if it were not there")


@pytest.mark.parametrize("word,pattern", [("/etc/v*.conf", True), ("a?", True), ("[ab]", True), ("pass[1", False),
                                          ("[]", False), ("x]y[", False)])
def test_valkey_says_a_pattern_in_the_flags_is_judged_as_written(tmp_path, word, pattern):
    environ = {"PATH": entrypoint(tmp_path / "bin"), "VALKEY_EXTRA_FLAGS": f"--maxclients 60000 --x {word}"}
    notes = through(["docker-entrypoint.sh", "valkey-server"], environ).notes
    said = ("VALKEY_EXTRA_FLAGS: a word with a pattern (* ? [...]) is judged as written; sh replaces it with the "
            "names of the files it matches, if any")
    assert (said in notes) == pattern


def test_valkey_named_by_profile_reads_the_options_the_images_entrypoint_starts_it_with(tmp_path):
    """docker run IMAGE --maxclients 100: the entrypoint puts valkey-server in front itself."""
    env = {"PATH": f"{entrypoint(tmp_path / 'bin')}:/usr/bin:/bin", "VALKEY_EXTRA_FLAGS": "--tcp-backlog 8192",
           "GUARD_PROCFS": crafted_proc(tmp_path / "proc", {"net.core.somaxconn": 4096, "vm.overcommit_memory": 1})}
    done = run_guard("check", "--profile", "valkey", "--format", "json", "--", "docker-entrypoint.sh",
                     "--maxclients", "60000", env=env, limits={"nofile": (1024, 1024)})
    report = json.loads(done.stdout)
    values = {c["name"]: c["required"] for c in report["checks"]}
    assert (values["open-files"], values["somaxconn"]) == (60032, 8192), report
