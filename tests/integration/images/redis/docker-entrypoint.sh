#!/bin/sh
# Like the official image's entrypoint: arguments that start with "-" or name a .conf file are
# options for redis-server; then exec, so the program stays the container's PID 1.
set -e
case "$1" in
    -*|*.conf) set -- redis-server "$@" ;;
esac
exec "$@"
