#!/bin/sh
# Makes the secret files docker-compose.yml mounts (deploy/secrets/), once: random database
# passwords, an admin key and a /metrics token; empty provider key files for you to fill.
# Existing files are kept.
#
# The directory is 0700 (only you); the files are 0644 because each container reads its own
# with its own user (postgres, temporal, runcap) through a bind mount that keeps the mode.
set -eu

dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"

random() { head -c 32 /dev/urandom | base64 | tr -d '\n/+='; }
make() {
    if [ ! -e "$dir/$1" ]; then
        printf '%s' "$2" > "$dir/$1"
        chmod 644 "$dir/$1"
        echo "made $dir/$1"
    fi
}

for name in postgres_password temporal_db_password runcap_db_password runcap_api_db_password \
    runcap_worker_db_password; do
    make "$name" "$(random)"
done
make runcap_admin_key "rc-admin-$(random)"
# /metrics asks for this token; an empty file (older versions of this script) left it open.
[ -s "$dir/runcap_metrics_token" ] || rm -f "$dir/runcap_metrics_token"
make runcap_metrics_token "$(random)"
for name in runcap_openai_api_key runcap_anthropic_api_key \
    runcap_alert_webhook_url runcap_alert_webhook_secret; do
    make "$name" ""  # optional: empty is unset
done
echo "put a provider key in $dir/runcap_openai_api_key or runcap_anthropic_api_key"
