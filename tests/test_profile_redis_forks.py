"""Valkey and KeyDB: Redis's start-up checks as each fork keeps them, in its own words.
(tests/integration/test_valkey.py holds a real valkey-server to the same verdicts.)"""

import os

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


@pytest.mark.parametrize("limit,status", [(32, "fail"), (33, "warn"), (10031, "warn"), (10032, "pass")])
def test_valkey_refuses_only_where_no_file_would_be_left_for_a_client(limit, status):
    done = run_guard("check", "--profile", "valkey", "--format", "json", "--skip", "somaxconn", "--skip", "overcommit",
                     limits={"nofile": (limit, limit)})
    assert done.returncode == (78 if status == "fail" else 0), text(done)
    assert f'"status": "{status}"' in done.stdout.decode()


def test_valkey_on_arm64_says_it_tests_the_kernel_itself(monkeypatch):
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "6.1.0", "#1", "aarch64")))
    assert plan("valkey").notes[-1].endswith("and exits if it has it, unless told ignore-warnings ARM64-COW-BUG: "
                                             "guard does not repeat the test")
    assert "ignore-warnings ARM64-COW-BUG lets it run on" in plan("valkey", "--ignore-warnings",
                                                                  "ARM64-COW-BUG").notes[-1]
