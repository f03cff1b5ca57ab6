"""SonarQube: its host requirements, and those its embedded Elasticsearch enforces."""

import os

from guard import config
from guard.checks import Requirement
from guard.profiles.elasticsearch import ES_FILE_DESCRIPTORS, ES_MAX_MAP_COUNT
from guard.profiles.plan import Plan

# SonarQube docs, "Linux pre-installation".
SONARQUBE_MAX_MAP_COUNT = 524288
SONARQUBE_FILES = 131072
SONARQUBE_THREADS = 8192
SONARQUBE_HOME = "/opt/sonarqube"  # the official image's SONARQUBE_HOME
SONARQUBE_SETTINGS = ("sonar.jdbc.url", "sonar.embeddedDatabase.port", "sonar.es.bootstrap.checks.disable")


def _env_name(key):
    """sonar.jdbc.url -> SONAR_JDBC_URL (sonar-main AppSettingsLoaderImpl, via
    SettingFormatter.fromJavaPropertyToEnvVariable)."""
    return key.upper().replace(".", "_").replace("-", "_")


def sonarqube_settings(invocation):
    """(settings, notes): conf/sonar.properties, then the variables named after its keys, as
    sonar-main's AppSettingsLoaderImpl loads them; a variable set to empty still counts (it
    is present), and Props trims every value."""
    env = invocation.environ
    home = env.get("SONARQUBE_HOME") or SONARQUBE_HOME
    path = os.path.join(home, "conf", "sonar.properties")
    settings, notes = config.read_properties(path, "sonar.properties", named=False)
    for key in SONARQUBE_SETTINGS:
        if _env_name(key) in env:
            settings[key] = env[_env_name(key)]
    return {key: value.strip() for key, value in settings.items()}, notes


def embedded_checks_enforced(settings):
    """(enforced, why), as SonarQube decides -Des.enforce.bootstrap.checks=true: JdbcSettings
    turns an empty sonar.jdbc.url, or a set sonar.embeddedDatabase.port, into the embedded H2
    database; EsJvmOptions then enforces unless the URL is H2's, and
    sonar.es.bootstrap.checks.disable, when present at all, decides instead (Boolean.parseBoolean:
    only "true" disables, so an empty value enforces)."""
    url = settings.get("sonar.jdbc.url", "")
    h2 = bool(settings.get("sonar.embeddedDatabase.port")) or not url or "jdbc:h2" in url
    database = "the embedded H2 database" if h2 else "an external database"
    if "sonar.es.bootstrap.checks.disable" in settings:
        disabled = settings["sonar.es.bootstrap.checks.disable"].lower() == "true"
        why = f"sonar.es.bootstrap.checks.disable [{settings['sonar.es.bootstrap.checks.disable']}]"
        return not disabled, f"{why}, with {database}"
    return not h2, database


def sonarqube_plan(invocation):
    settings, notes = sonarqube_settings(invocation)
    enforced, why = embedded_checks_enforced(settings)
    note = (f"embedded Elasticsearch enforces its bootstrap checks ({why})" if enforced else
            f"embedded Elasticsearch checks are not enforced ({why})")
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
    ], [note] + notes)
