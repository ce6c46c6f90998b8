#!/usr/bin/env bash
# PostgreSQL's server binaries (initdb, pg_ctl) from Debian, installed when missing; prints
# their directory. Used by .ci/run and make prod-check (the tests start their own servers).
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x "$(pg_bin)/initdb" ] && ! command -v initdb >/dev/null; then
    echo "--- installing postgresql" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if [ -n "$(pg_bin)" ]; then
    echo "$(pg_bin)"
else
    dirname "$(command -v initdb)"
fi
