"""SonarQube: its host requirements, and those its embedded Elasticsearch enforces."""

from guard.checks import Requirement
from guard.profiles.elasticsearch import ES_FILE_DESCRIPTORS, ES_MAX_MAP_COUNT
from guard.profiles.plan import Plan

# SonarQube docs, "Linux pre-installation"; sonar-main EsJvmOptions adds
# -Des.enforce.bootstrap.checks=true unless the database is H2 or the checks are disabled.
SONARQUBE_MAX_MAP_COUNT = 524288
SONARQUBE_FILES = 131072
SONARQUBE_THREADS = 8192


def sonarqube_plan(invocation):
    env = invocation.environ
    h2 = "jdbc:h2" in env.get("SONAR_JDBC_URL", "jdbc:h2")
    disabled = env.get("SONAR_ES_BOOTSTRAP_CHECKS_DISABLE", "").lower() == "true"
    enforced = not (h2 or disabled)
    note = ("embedded Elasticsearch enforces its bootstrap checks (external database)" if enforced else
            "embedded Elasticsearch checks are not enforced (H2 database or SONAR_ES_BOOTSTRAP_CHECKS_DISABLE)")
    return Plan([
        Requirement("vm.max_map_count", ">=", ES_MAX_MAP_COUNT, enforced, name="es-max-map-count",
                    source="embedded Elasticsearch MaxMapCountCheck (1 << 18)"),
        Requirement("nofile.hard", ">=", ES_FILE_DESCRIPTORS, enforced, name="es-file-descriptors",
                    source="embedded Elasticsearch FileDescriptorCheck"),
        Requirement("vm.max_map_count", ">=", SONARQUBE_MAX_MAP_COUNT, False,
                    source="SonarQube docs: vm.max_map_count >= 524288"),
        Requirement("fs.file-max", ">=", SONARQUBE_FILES, False,
                    source="SonarQube docs: fs.file-max >= 131072"),
        Requirement("nofile.hard", ">=", SONARQUBE_FILES, False, name="file-descriptors",
                    source="SonarQube docs: 131072 file descriptors"),
        Requirement("nproc", ">=", SONARQUBE_THREADS, False, name="max-threads",
                    source="SonarQube docs: 8192 threads"),
    ], [note])
