#!/bin/sh
# The stand-in for haproxy:2.8-alpine's entrypoint (tests/swarm/images.py), doing
# what the official one does: arguments starting with "-" go to haproxy, and
# haproxy runs in master-worker mode (-W) in the foreground (-db).
set -e
if [ "${1#-}" != "$1" ]; then
  set -- haproxy "$@"
fi
if [ "$1" = haproxy ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
