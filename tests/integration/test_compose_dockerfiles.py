"""compose/*/Dockerfile: each copies the bundle into the vendor's image and changes nothing else.

Built over stand-ins for the vendor images (tests/integration/images/vendors: the entrypoint,
command, user and config file where the real image has them, and no Python), then run as
users run them.
"""

import glob
import os
import re

import pytest
from containers import EXIT_REFUSED, REPO, exec_output, finish, wait_for_process
from hostsettings import sysctl

DOCKERFILES = sorted(glob.glob(os.path.join(REPO, "compose", "*", "Dockerfile")))
# FileDescriptorCheck wants 65535, but dockerd here cannot give a container more than its own
# hard limit (20000); the map count is what these tests are about.
OTHER_THAN_FILES = {"GUARD_SKIP": "file-descriptors"}
ES_SENTENCE = "max virtual memory areas vm.max_map_count [65530] is too low, increase to at least [262144]"
INSTALLS = re.compile(r"\b(apt-get|apt|apk|dnf|microdnf|yum|pip3?|gcc|cc|make|curl|wget)\b")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: os.path.relpath(p, REPO))
def test_dockerfile_copies_the_bundle_and_installs_nothing(path):
    with open(path) as f:
        instructions = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    assert "COPY --from=guard /opt/guard /opt/guard" in instructions
    run_lines = [line for line in instructions if line.startswith("RUN")]
    assert run_lines == [], "a RUN in a vendor image: the bundle needs nothing installed"
    assert not any(INSTALLS.search(line) for line in instructions)
    assert not any(line.startswith("USER") for line in instructions), "the image's own USER is kept"
    [entrypoint] = [line for line in instructions if line.startswith("ENTRYPOINT")]
    assert '"/opt/guard/bin/guard"' in entrypoint


@pytest.mark.parametrize("name", ["elasticsearch", "opensearch", "kafka", "redis"])
def test_guard_joins_the_images_entrypoint_and_drops_none_of_it(made, request, stand_in_images, name):
    # The vendor's entrypoint does work of its own before the program (tini reaps; the Kafka
    # image's, from eclipse-temurin, imports CA certificates): guard is added to it, never in its place.
    guarded = made.client.images.get(request.getfixturevalue(f"guarded_{name}_image")).attrs["Config"]
    vendor = made.client.images.get(stand_in_images[name]).attrs["Config"]
    entrypoint = guarded["Entrypoint"]
    start = entrypoint.index("/opt/guard/bin/guard")
    end = entrypoint.index("--", start)
    assert entrypoint[:start] + entrypoint[end + 1:] == vendor["Entrypoint"]
    assert guarded["Cmd"] == vendor["Cmd"]


@pytest.mark.parametrize("name", ["elasticsearch", "opensearch"])
def test_search_images_refuse_a_short_map_count_and_start_once_it_is_raised(made, request, name):
    image = request.getfixturevalue(f"guarded_{name}_image")
    with sysctl("vm.max_map_count", 65530):
        status, log = finish(made.container(image, environment=OTHER_THAN_FILES))
    assert status == EXIT_REFUSED, log
    assert ES_SENTENCE in log
    assert f"stand-in {name} started" not in log
    with sysctl("vm.max_map_count", 262144):
        status, log = finish(made.container(image, environment=OTHER_THAN_FILES))
    assert status == 0, log
    # The image's own user (uid 1000) runs the program: the Dockerfile did not change it.
    assert f"stand-in {name} started as uid 1000" in log


def test_elasticsearch_image_keeps_tini_as_pid_1_and_guard_hands_over(made, guarded_elasticsearch_image):
    with sysctl("vm.max_map_count", 262144):
        container = made.container(guarded_elasticsearch_image, ["sleep", "1000"], environment=OTHER_THAN_FILES)
        wait_for_process(container, "sleep")
    assert exec_output(container, "cat", "/proc/1/comm") == (0, "tini")
    code, names = exec_output(container, "sh", "-c", "cat /proc/[0-9]*/comm")
    assert "guard" not in names.split(), "guard exec'd the entrypoint: it is no longer there"


def test_kafka_image_starts_as_its_own_user(made, guarded_kafka_image):
    status, log = finish(made.container(guarded_kafka_image, environment={"KAFKA_LOG_DIRS": "/var/lib/kafka/data"}))
    assert status == 0, log
    assert "log.dirs [/var/lib/kafka/data] holds 0 segments" in log
    assert "stand-in kafka started as uid 1000" in log


def test_kafka_image_still_imports_the_system_ca_certificates(made, guarded_kafka_image):
    status, log = finish(made.container(guarded_kafka_image, environment={"USE_SYSTEM_CA_CERTS": "1"}))
    assert status == 0, log
    assert "stand-in cacert entrypoint imported the system CA certificates" in log
    assert "stand-in kafka started as uid 1000" in log

