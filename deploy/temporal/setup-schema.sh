#!/bin/sh
# One-shot before Temporal starts: its schema on PostgreSQL, with the admin-tools image's
# temporal-sql-tool (make prod-check runs it with the tool built at the same version).
# Idempotent: setup-schema skips a database already past 0.0, and update-schema applies only
# the versions it lacks, so this also upgrades the schema when the Temporal version moves.
# The databases exist already (deploy/postgres/init-roles.sh made them, owned by temporal).
set -eu

SECRETS="${RUNCAP_SECRETS_DIR:-/run/secrets}"
SCHEMA_DIR="${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"
SQL_PASSWORD="$(cat "$SECRETS/temporal_db_password")"
export SQL_PASSWORD SQL_PLUGIN=postgres12 SQL_HOST="$POSTGRES_SEEDS" SQL_PORT="${DB_PORT:-5432}"
export SQL_USER="$POSTGRES_USER"

for pair in temporal:temporal temporal_visibility:visibility; do
    database="${pair%%:*}"
    SQL_DATABASE="$database"
    export SQL_DATABASE
    temporal-sql-tool setup-schema -v 0.0
    temporal-sql-tool update-schema -d "$SCHEMA_DIR/${pair#*:}/versioned"
    echo "setup-schema: $database is at the schema of this Temporal version"
done
