#!/bin/sh
# Like the image's entrypoint: `eswrapper` starts Elasticsearch in the foreground.
set -e
if [ "$1" = eswrapper ]; then
    shift
    set -- /usr/share/elasticsearch/bin/elasticsearch "$@"
fi
exec "$@"
