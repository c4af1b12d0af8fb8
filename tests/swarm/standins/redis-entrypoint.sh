#!/bin/sh
# The stand-in for redis:7.2-alpine's entrypoint (tests/swarm/images.py), doing
# what the official one does: arguments starting with "-" (or a .conf file) go
# to redis-server; redis-server runs as the redis user, which owns /data; and
# protected mode is off unless asked for, as the official image builds Redis:
# the container's network is the boundary, not the loopback interface.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
