"""Reading files the program or the host owns: regular files only, bounded, never blocking, and
settings parsed the way each program parses them. Real files, FIFOs, devices and /proc."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from guard import config, host


def blocked_writer(fifo, data):
    """A process that writes data (text or bytes) into fifo once a reader opens it; until then
    it waits in open(2). Still waiting afterwards means no one opened the FIFO for reading."""
    data = data.encode() if isinstance(data, str) else data
    code = "import sys; f = open(sys.argv[1], 'wb'); f.write(bytes.fromhex(sys.argv[2])); f.close()"
    return subprocess.Popen([sys.executable, "-c", code, str(fifo), data.hex()])


def still_waiting(proc, seconds=0.3):
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def drain(fifo):
    with open(fifo, "rb") as f:
        return f.read()


# --- host.read_bytes: what is opened, and how much is read ---

def test_proc_and_sys_pseudo_files_are_read_though_their_size_says_zero():
    assert os.stat("/proc/sys/vm/max_map_count").st_size == 0
    assert int(host.read_text("/proc/sys/vm/max_map_count")) > 0
    assert host.read_text("/sys/kernel/mm/transparent_hugepage/enabled").count("[") == 1
    assert host.read_bytes("/proc/self/status").startswith(b"Name:")


def test_a_fifo_without_a_writer_is_not_opened(tmp_path):
    fifo = tmp_path / "elasticsearch.yml"
    os.mkfifo(fifo)
    writer = blocked_writer(fifo, "discovery.type: single-node\n")
    try:
        started = time.monotonic()
        with pytest.raises(host.Unreadable, match=r"is a FIFO or pipe, not a regular file: not read"):
            host.read_bytes(str(fifo))
        assert time.monotonic() - started < 1
        assert still_waiting(writer), "guard opened the FIFO: the writer got through"
        assert drain(fifo) == b"discovery.type: single-node\n"  # all of it is still there for the program
    finally:
        writer.kill()
        writer.wait()


def test_a_pipe_is_not_read_and_keeps_every_byte(tmp_path):
    read_end, write_end = os.pipe()
    os.write(write_end, b"port 6380\nrequirepass secret\n")
    os.close(write_end)
    try:
        with pytest.raises(host.Unreadable, match="FIFO or pipe"):
            host.read_bytes(f"/proc/self/fd/{read_end}")
        assert os.read(read_end, 1000) == b"port 6380\nrequirepass secret\n"
    finally:
        os.close(read_end)


@pytest.mark.parametrize("path,kind", [("/dev/zero", "a character device"), ("/dev/null", "a character device"),
                                       ("/", "a directory")])
def test_devices_and_directories_are_named_and_not_read(path, kind):
    with pytest.raises(host.Unreadable) as caught:
        host.read_bytes(path)
    assert str(caught.value).startswith(f"{path} is {kind}, not a regular file: not read")
    assert not caught.value.missing


def test_a_symlink_loop_and_a_missing_file_say_why(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(host.Unreadable, match="Too many levels of symbolic links"):
        host.read_bytes(str(loop))
    with pytest.raises(host.Unreadable, match="No such file or directory") as caught:
        host.read_bytes(str(tmp_path / "missing"))
    assert caught.value.missing


def test_a_file_over_the_bound_is_not_read(tmp_path):
    big = tmp_path / "big.yml"
    with open(big, "wb") as f:
        f.truncate(200 << 20)  # 200 MB, sparse
    started = time.monotonic()
    with pytest.raises(host.Unreadable, match=r"\[209715200\] bytes, more than the \[1048576\] guard reads"):
        host.read_bytes(str(big))
    assert time.monotonic() - started < 0.5
    at_bound = tmp_path / "at.yml"
    at_bound.write_bytes(b"x" * host.FILE_LIMIT)
    assert len(host.read_bytes(str(at_bound))) == host.FILE_LIMIT


def test_a_symlink_to_a_regular_file_is_followed(tmp_path):
    (tmp_path / "real.conf").write_text("maxclients 5\n")
    (tmp_path / "link.conf").symlink_to(tmp_path / "real.conf")
    assert host.read_bytes(str(tmp_path / "link.conf")) == b"maxclients 5\n"


# --- YAML, flattened as Elasticsearch does ---

@pytest.mark.parametrize("text,expected", [
    ("discovery.type: single-node\n", {"discovery.type": "single-node"}),
    ("discovery: {type: single-node}\n", {"discovery.type": "single-node"}),
    ("discovery:\n  type: single-node\n", {"discovery.type": "single-node"}),
    ('"discovery.type": "single-node"\n', {"discovery.type": "single-node"}),
    ("---\ndiscovery.type: single-node # a comment\n...\n", {"discovery.type": "single-node"}),
    ("x: |\n  discovery.type: single-node\n", {"x": "discovery.type: single-node\n"}),
    ("x: >\n  discovery.type:\n  single-node\n", {"x": "discovery.type: single-node\n"}),
    ("network.host: [127.0.0.1, '::1']\n", {"network.host": ["127.0.0.1", "::1"]}),
    ("network.host:\n  - _local_\n  - _site_\n", {"network.host": ["_local_", "_site_"]}),
    ("a: &n 0.0.0.0\nnetwork.host: *n\n", {"a": "0.0.0.0", "network.host": "0.0.0.0"}),
    ("bootstrap.memory_lock: True\nx: yes\ny: 0x10\nz: 1e3\n",
     {"bootstrap.memory_lock": "true", "x": "yes", "y": "0x10", "z": "1e3"}),
    ("network.host: 0.0.0.0\r\ndiscovery.type: single-node\r\n",
     {"network.host": "0.0.0.0", "discovery.type": "single-node"}),
    ("\ufeffcluster.name: docker-cluster\n", {"cluster.name": "docker-cluster"}),
    ("discovery: {type: a}\ndiscovery.type: b\n", {"discovery.type": "b"}),
    ("discovery.type: b\ndiscovery: {type: a}\n", {"discovery.type": "a"}),
    ("# only comments\n", {}),
    ("", {}),
])
def test_yaml_is_flattened_as_elasticsearch_loads_it(text, expected):
    assert config.flatten_yaml(text.encode()) == expected


@pytest.mark.parametrize("text,reason", [
    ("a: [unclosed\n", "not valid YAML"),
    ("a: b\n---\nc: d\n", "not valid YAML"),
    ("- a\n- b\n", "the top level is not a mapping"),
    ("a: 1\na: 2\n", "duplicate key [a] at line 2"),
    ("discovery:\n  type: x\n  type: y\n", "duplicate key [discovery.type] at line 3"),
    ("network.host:\n", "[network.host] has no value (line 1)"),
    ("a: [[1, 2]]\n", "[a] holds a list or mapping inside a list"),
    ("? [a, b]\n: c\n", "is a list or mapping, not a name"),
    ("a: \"\\x00\x01\"\nb: \x07\n", "not valid YAML"),
    ("a: [" * 2000, "not valid YAML"),
])
def test_yaml_the_program_refuses_is_named_not_guessed(text, reason):
    with pytest.raises(config.Unparsable) as caught:
        config.flatten_yaml(text.encode())
    assert reason in str(caught.value)


def test_an_alias_bomb_stops_at_the_entry_bound():
    lines = ["a0: &a0 {x: 1, y: 1, z: 1, w: 1, v: 1, u: 1, t: 1, s: 1, r: 1, q: 1}"]
    for level in range(1, 9):
        refs = ", ".join(f"k{i}: *a{level - 1}" for i in range(10))
        lines.append(f"a{level}: &a{level} {{{refs}}}")
    started = time.monotonic()
    with pytest.raises(config.Unparsable, match="entries once aliases are expanded"):
        config.flatten_yaml("\n".join(lines).encode())
    assert time.monotonic() - started < 5


# --- Redis config lines, as sds.c sdssplitargs splits them ---

@pytest.mark.parametrize("line,words", [
    ("maxclients 100", ["maxclients", "100"]),
    ("  tcp-backlog\t 8192  ", ["tcp-backlog", "8192"]),
    ('requirepass "a b"', ["requirepass", "a b"]),
    ('include "/etc/redis/my conf.d/*.conf"', ["include", "/etc/redis/my conf.d/*.conf"]),
    ("rename-command CONFIG ''", ["rename-command", "CONFIG", ""]),
    (r'x "\x41\n\"q"', ["x", "A\n\"q"]),
    (r"x 'it\'s'", ["x", "it's"]),
    ('x ab"cd"', ["x", "abcd"]),
])
def test_redis_lines_split_as_redis_splits_them(line, words):
    assert config.split_redis_args(line) == words


@pytest.mark.parametrize("line", ['x "unterminated', "x 'a'b", 'x "a"b'])
def test_unbalanced_quotes_are_refused_as_redis_refuses_them(line):
    assert config.split_redis_args(line) is None


def test_redis_include_globs_are_sorted_and_a_later_value_wins(tmp_path):
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "20-clients.conf").write_text("maxclients 200\n")
    (conf_d / "10-clients.conf").write_text("maxclients 100\ntcp-backlog 1024\n")
    (conf_d / "ignored.txt").write_text("maxclients 1\n")
    main = tmp_path / "redis.conf"
    main.write_text(f"maxclients 5\ninclude {conf_d}/*.conf\ninclude {tmp_path}/none/*.conf\n")
    notes = []
    directives = config.redis_directives(str(main), [], notes)
    assert directives == [("maxclients", ["5"]), ("maxclients", ["100"]), ("tcp-backlog", ["1024"]),
                          ("maxclients", ["200"])]
    assert notes == []  # a glob that matches nothing is no error to Redis either


def test_a_deep_include_chain_is_followed_to_its_end(tmp_path):
    depth = 3000
    for n in range(depth):
        body = f"include {tmp_path}/{n + 1}.conf\n" if n + 1 < depth else "maxclients 4242\n"
        (tmp_path / f"{n}.conf").write_text(body)
    notes = []
    assert config.redis_directives(str(tmp_path / "0.conf"), [], notes) == [("maxclients", ["4242"])]
    assert notes == []


def test_an_include_cycle_is_followed_once_and_said(tmp_path):
    (tmp_path / "a.conf").write_text(f"maxclients 1\ninclude {tmp_path}/b.conf\n")
    (tmp_path / "b.conf").write_text(f"tcp-backlog 2\ninclude {tmp_path}/a.conf\n")
    notes = []
    directives = config.redis_directives(str(tmp_path / "a.conf"), [], notes)
    assert directives == [("maxclients", ["1"]), ("tcp-backlog", ["2"])]
    assert notes == [f"included file [{tmp_path}/a.conf] includes itself: redis-server would never "
                     "finish reading it; followed once"]


def test_an_include_that_cannot_be_read_is_a_note_naming_it(tmp_path):
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    main = tmp_path / "redis.conf"
    main.write_text(f"include {fifo}\ninclude {tmp_path}/missing.conf\nmaxclients 9\n")
    notes = []
    assert config.redis_directives(str(main), [], notes) == [("maxclients", ["9"])]
    assert notes[0].startswith(f"included file: {fifo} is a FIFO or pipe, not a regular file: not read")
    assert notes[1] == (f"included file: cannot read {tmp_path}/missing.conf: No such file or directory; "
                        "judged without its settings")


def test_a_nul_byte_ends_what_redis_sees_of_a_line(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_bytes(b"maxclients 12\x0034\ntcp-backlog 7\n")
    assert config.redis_directives(str(conf), [], []) == [("maxclients", ["12"]), ("tcp-backlog", ["7"])]


# --- Java properties ---

def test_properties_comment_does_not_continue_onto_the_next_line(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("#log.dirs=/old,\\\nlog.dirs=/real\n")
    assert config.read_properties(str(props), "server.properties") == ({"log.dirs": "/real"}, [])


# What java.util.Properties.load makes of each text (None: it throws, and the program stops),
# checked against the JDK itself by test_properties_cases_are_what_the_jdk_reads.
PROPERTIES_CASES = [
    ("log.dirs=/a\\\\\nlog.dir=/b\n", {"log.dirs": "/a\\", "log.dir": "/b"}),  # two backslashes: one, no continuation
    ("log.dirs=/a,\\\n   /b\n", {"log.dirs": "/a,/b"}),
    ("log.dirs=/a,\\\n  # no comment\n", {"log.dirs": "/a,# no comment"}),
    ("\\\n#log.dirs=/a\n", {}),  # an empty line continued: a comment still
    ("#log.dirs=/a\\\nlog.dir=/b\n", {"log.dir": "/b"}),  # a comment is never continued
    ("log.dirs=/a,\\\n\nlog.dir=/b\n", {"log.dirs": "/a,", "log.dir": "/b"}),  # a blank line ends it
    ("log.dirs=/a,\\", {"log.dirs": "/a,"}),  # continued at the end of the file
    ("log.dirs=/a\\ \nlog.dir=/b\n", {"log.dirs": "/a ", "log.dir": "/b"}),  # an escaped space: no continuation
    ("log.dirs=/data/kafka\\ logs\\t1\n", {"log.dirs": "/data/kafka logs\t1"}),
    ("log\\ dirs\\=x=/a\n", {"log dirs=x": "/a"}),
    ("log.dirs=\\u002fdata\\/x\\\\y\n", {"log.dirs": "/data/x\\y"}),
    ("log.dirs=/a\x0bb\x1cc\n", {"log.dirs": "/a\x0bb\x1cc"}),  # only CR and LF end a line
    ("log.dirs=/a\rlog.dir=/b\r\n", {"log.dirs": "/a", "log.dir": "/b"}),
    ("\f log.dirs \t: = /a \n", {"log.dirs": "= /a "}),
    ("log.dirs /a\n", {"log.dirs": "/a"}),
    ("log.dirs\n", {"log.dirs": ""}),
    (":/a\n", {"": "/a"}),
    ("log.dirs=\\u00zz\n", None),
    ("log.dirs=/a\\u12\n", None),
]


@pytest.mark.parametrize("text,expected", PROPERTIES_CASES)
def test_properties_are_read_as_java_util_properties_reads_them(tmp_path, text, expected):
    props = tmp_path / "server.properties"
    props.write_bytes(text.encode("latin-1"))
    settings, notes = config.read_properties(str(props), "server.properties")
    if expected is None:
        assert (settings, notes) == ({}, [f"server.properties [{props}] cannot be used: malformed \\uxxxx "
                                          "encoding; the program refuses it too; judged without its settings"])
    else:
        assert (settings, notes) == (expected, [])


# Loads each file named with java.util.Properties.load(InputStream), as Kafka's Utils.loadProps
# does; prints one JSON object a file (null when load throws), every character outside ASCII's
# printable ones escaped.
PROPERTIES_ORACLE = r"""
import java.io.FileInputStream;
import java.util.Properties;
import java.util.TreeMap;
public class Oracle {
    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray())
            b.append(c < 32 || c > 126 || c == '"' || c == '\\' ? String.format("\\u%04x", (int) c) : String.valueOf(c));
        return b.append('"').toString();
    }
    public static void main(String[] args) throws Exception {
        for (String path : args) {
            Properties p = new Properties();
            try (FileInputStream in = new FileInputStream(path)) {
                p.load(in);
            } catch (IllegalArgumentException e) {
                System.out.println("null");
                continue;
            }
            StringBuilder b = new StringBuilder("{");
            for (var e : new TreeMap<>(p).entrySet())
                b.append(b.length() > 1 ? "," : "").append(json((String) e.getKey())).append(':').append(json((String) e.getValue()));
            System.out.println(b.append('}'));
        }
    }
}
"""


def test_properties_cases_are_what_the_jdk_reads(tmp_path):
    if shutil.which("javac") is None:
        pytest.skip("no JDK here to check the cases with (openjdk-17-jdk-headless)")
    (tmp_path / "Oracle.java").write_text(PROPERTIES_ORACLE)
    subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "Oracle.java")], check=True)
    paths = []
    for number, (text, _) in enumerate(PROPERTIES_CASES):
        paths.append(tmp_path / f"{number}.properties")
        paths[-1].write_bytes(text.encode("latin-1"))
    done = subprocess.run(["java", "-cp", str(tmp_path), "Oracle", *map(str, paths)], capture_output=True,
                          text=True, check=True, timeout=60)
    assert [json.loads(line) for line in done.stdout.splitlines()] == [expected for _, expected in PROPERTIES_CASES]


def test_a_megabyte_of_continued_lines_is_read_in_linear_time(tmp_path):
    # 150,000 lines that each continue the one before: joined once, not copied again at each line
    props = tmp_path / "server.properties"
    props.write_text("log.dirs=/data\\\n" + ",/more\\\n" * ((host.FILE_LIMIT - 20) // 8) + "\n")
    started = time.process_time()
    settings, notes = config.read_properties(str(props), "server.properties")
    assert time.process_time() - started < 1.0
    assert (settings["log.dirs"][:16], notes) == ("/data,/more,/mor", [])


def test_a_properties_file_that_is_a_directory_is_a_note(tmp_path):
    settings, notes = config.read_properties(str(tmp_path), "server.properties")
    assert settings == {}
    assert notes == [f"server.properties: {tmp_path} is a directory, not a regular file: not read "
                     "(a directory holds no settings); judged without its settings"]
