#!/bin/sh
# PostgreSQL's first start (the postgres image runs this once, as its superuser, on an empty
# data volume; make prod-check runs it against its own server the same way).
#
# One role per part, each with only what it needs:
#   temporal       owns the temporal and temporal_visibility databases, and nothing else
#   runcap         owns the runcap database and its tables: only the migrate one-shot uses it
#   runcap_api     connects to runcap; table privileges come from db/grants.py (migrate grants)
#   runcap_worker  likewise, with fewer privileges
# Passwords are read from secret files by psql itself (never on a command line, never in SQL
# text), so any character works in them.
set -eu

SECRETS="${RUNCAP_SECRETS_DIR:-/run/secrets}"
for name in temporal_db_password runcap_db_password runcap_api_db_password \
    runcap_worker_db_password; do
    if [ ! -s "$SECRETS/$name" ]; then
        echo "init-roles: secret $SECRETS/$name is missing or empty" >&2
        exit 1
    fi
done

psql -X -v ON_ERROR_STOP=1 -v secrets="$SECRETS" \
    --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\set temporal_pw `cat :'secrets'/temporal_db_password`
\set owner_pw `cat :'secrets'/runcap_db_password`
\set api_pw `cat :'secrets'/runcap_api_db_password`
\set worker_pw `cat :'secrets'/runcap_worker_db_password`

CREATE ROLE temporal LOGIN PASSWORD :'temporal_pw';
CREATE ROLE runcap LOGIN PASSWORD :'owner_pw';
CREATE ROLE runcap_api LOGIN PASSWORD :'api_pw';
CREATE ROLE runcap_worker LOGIN PASSWORD :'worker_pw';

CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
CREATE DATABASE runcap OWNER runcap;
-- Nobody connects to a database that is not theirs.
REVOKE ALL ON DATABASE temporal, temporal_visibility, runcap FROM PUBLIC;
GRANT CONNECT ON DATABASE runcap TO runcap_api, runcap_worker;

\connect runcap
-- Only the owner creates objects; the api and the worker may only use what it grants them.
ALTER SCHEMA public OWNER TO runcap;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO runcap_api, runcap_worker;
SQL
echo "init-roles: roles temporal, runcap, runcap_api, runcap_worker and their databases created"
