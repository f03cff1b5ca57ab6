"""Neo4j: the open files warning of its launcher."""

from guard.checks import Requirement
from guard.profiles.plan import Plan

# neo4j/neo4j community/neo4j/src/main/java/org/neo4j/server/startup/UnixBootloaderOs.java
# checkLimits: `ulimit -n` (the soft limit) below this on `neo4j start` and `neo4j console` gives
# "WARNING: Max %s open files allowed, minimum of %s recommended. See the Neo4j manual." and Neo4j
# starts anyway.
NEO4J_FILES = 40000


def neo4j_plan(invocation):
    return Plan([
        Requirement("nofile", ">=", NEO4J_FILES, False, name="open-files",
                    source="Neo4j UnixBootloaderOs.checkLimits: \"minimum of 40000 recommended\""),
    ], ["the official image's entrypoint runs `neo4j console --dry-run` and evals the java command it prints, "
        "so Neo4j's own open files check never runs there: guard's stands in for it"])
