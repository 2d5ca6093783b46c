#!/bin/sh
# Entry point of the test image postgres:18 (tests/tools/pgimage.py), run by busybox's sh. It honours
# what the official image's entry point does with the same variables, so a container is started the
# way users start theirs: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
# POSTGRES_USER (default postgres), POSTGRES_DB (default: the user's name), POSTGRES_INITDB_ARGS,
# PGDATA, and *.sql / *.sh files in /docker-entrypoint-initdb.d run once on a new data directory.
set -eu

# Any other command (a shell, sleep, ...) runs as given, like the official image.
case "${1:-postgres}" in
  postgres|-*) ;;
  *) exec "$@" ;;
esac
[ "${1:-}" = postgres ] && shift

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  # busybox su runs `sh FILE ARGS` as the user; -- keeps postgres's own options (-c ...) away from su.
  exec su -p -s /bin/sh -- postgres "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  database="${POSTGRES_DB:-$user}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "Error: database is uninitialized and superuser password is not specified." >&2
    echo "  Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)." >&2
    exit 1
  fi
  # The password goes through a file that only the server's account can read, removed at once.
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as in the official image
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  # A first start to create the database and run the init scripts: no TCP, and its socket in a
  # folder of its own, so that a readiness probe (pg_isready, even on the default socket) cannot
  # take this short-lived server for the real one.
  PGHOST="$(mktemp -d)"
  export PGHOST
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$PGHOST" start >/dev/null
  if [ "$database" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -q -c "CREATE DATABASE \"$database\""
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sql) psql -v ON_ERROR_STOP=1 -U "$user" -d "$database" -q -f "$script" ;;
      *.sh) . "$script" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$PGHOST"
  unset PGHOST
  echo "PostgreSQL init process complete; ready for start up."
fi

exec postgres -c listen_addresses='*' "$@"
