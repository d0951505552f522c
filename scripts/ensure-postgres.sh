#!/usr/bin/env bash
# ensure-postgres.sh: make sure a PostgreSQL server answers on 127.0.0.1:5432 for deskd's tests and demo.
# Starts an installed but stopped cluster (pg_ctlcluster), installs PostgreSQL with apt when running as
# root, and otherwise stops with a message saying what to do. Honours DESKD_TEST_DATABASE_URL: when it
# points elsewhere, this script only checks that it answers.
set -euo pipefail

host=127.0.0.1
port=5432
if [ -n "${DESKD_TEST_DATABASE_URL:-}" ]; then
  if command -v psql >/dev/null && psql "$DESKD_TEST_DATABASE_URL" -Atc 'select 1' >/dev/null 2>&1; then
    exit 0
  fi
fi

ready() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$host" -p "$port"
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

ready && exit 0

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-postgres: PostgreSQL is not installed; installing it with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  else
    cat >&2 <<'MSG'
ensure-postgres: PostgreSQL is not installed and this script cannot install it (not root, or no apt-get).
Install it (Debian/Ubuntu: sudo apt-get install -y postgresql) with a trust or password login for user
postgres on 127.0.0.1:5432, or point DESKD_TEST_DATABASE_URL at a reachable server.
MSG
    exit 1
  fi
fi

version=$(ls /etc/postgresql | sort -V | tail -1)
# trust auth on loopback for the postgres user, as the tests expect
hba=/etc/postgresql/$version/main/pg_hba.conf
if [ -w "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
fi
echo "ensure-postgres: starting PostgreSQL $version" >&2
if [ "$(id -u)" = 0 ]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start
else
  pg_ctlcluster "$version" main start || {
    echo "ensure-postgres: could not start the cluster; run: sudo pg_ctlcluster $version main start" >&2
    exit 1
  }
fi
for _ in $(seq 1 30); do
  ready && exit 0
  sleep 1
done
echo "ensure-postgres: PostgreSQL $version did not come up on $host:$port; see /var/log/postgresql/" >&2
exit 1
