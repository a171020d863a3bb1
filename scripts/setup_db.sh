#!/usr/bin/env bash
# Provision the ledger's PostgreSQL on this machine (idempotent): a LOGIN role `quanticity` with
# CREATEDB (password `quanticity`; the ledger tests create and drop a database per test as this role)
# and a database `quanticity` owned by it. Connects as the superuser over TCP
# (`psql -h HOST -U postgres`, trust auth on 127.0.0.1 as installed here).
# Prints one line; exits 1 with a clear message when PostgreSQL cannot be reached or a step fails.
# PGHOST / PGPORT / PGSUPERUSER override where and as whom.
set -euo pipefail
host="${PGHOST:-127.0.0.1}"
port="${PGPORT:-5432}"
su="${PGSUPERUSER:-postgres}"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"

if ! command -v psql >/dev/null 2>&1; then
  echo "setup_db: psql not found; install PostgreSQL's client (apt-get install postgresql-client)" >&2
  exit 1
fi
psql_su() { psql -h "$host" -p "$port" -U "$su" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

if ! err=$(psql_su -Atc 'SELECT 1' 2>&1 >/dev/null); then
  echo "setup_db: PostgreSQL not reachable at $host:$port as $su: ${err//$'\n'/ }" >&2
  exit 1
fi

# Decision: check-then-create through \gexec (CREATE DATABASE cannot run inside a DO block); a
# concurrent run that wins the race makes ours fail with "already exists", so one retry settles it.
provision() {
  psql_su <<'SQL'
SELECT 'CREATE ROLE quanticity LOGIN CREATEDB PASSWORD ''quanticity'''
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quanticity')\gexec
ALTER ROLE quanticity LOGIN CREATEDB PASSWORD 'quanticity';
SELECT 'CREATE DATABASE quanticity OWNER quanticity'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'quanticity')\gexec
ALTER DATABASE quanticity OWNER TO quanticity;
SQL
}
if ! err=$(provision 2>&1); then
  sleep 1
  if ! err=$(provision 2>&1); then
    echo "setup_db: provisioning failed at $host:$port: ${err//$'\n'/ }" >&2
    exit 1
  fi
fi

version=$(psql_su -Atc "SHOW server_version" | cut -d' ' -f1)
echo "setup_db: role quanticity (LOGIN CREATEDB) and database quanticity ready on $host:$port (PostgreSQL $version)"
