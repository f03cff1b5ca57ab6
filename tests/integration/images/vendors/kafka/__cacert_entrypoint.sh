#!/bin/sh
# Stands in for the entrypoint apache/kafka inherits from eclipse-temurin (adoptium/containers,
# entrypoint.sh): with USE_SYSTEM_CA_CERTS set it imports the system's CA certificates into the
# JVM's truststore, then execs its arguments.
if [ -n "$USE_SYSTEM_CA_CERTS" ]; then
    echo "stand-in cacert entrypoint imported the system CA certificates"
fi
exec "$@"
