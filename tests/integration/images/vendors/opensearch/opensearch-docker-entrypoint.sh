#!/bin/sh
# Like the image's entrypoint: `opensearch` starts OpenSearch in the foreground.
set -e
if [ "$1" = opensearch ]; then
    shift
    set -- /usr/share/opensearch/bin/opensearch "$@"
fi
exec "$@"
