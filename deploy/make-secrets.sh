#!/bin/sh
# Makes the secret files docker-compose.yml mounts (deploy/secrets/, or the directory given as
# the first argument), once: random database passwords, an admin key and a /metrics token;
# empty provider key files for you to fill; and Temporal's mTLS: a CA, the server's certificate
# and the clients' (worker, api, admin-tools, UI). Existing files are kept; delete the temporal_*
# files and run this again to issue new certificates (the server and every client must then
# restart).
#
# Why mTLS: whoever reaches Temporal's frontend is its admin (an update lifts any run's budget),
# so the frontend refuses every client without a certificate from this CA.
#
# The directory is 0700 (only you); the files are 0644 because each container reads its own
# with its own user (postgres, temporal, runcap) through a bind mount that keeps the mode. The
# CA's key is 0600: no container mounts it.
set -eu

dir="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
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

# -- Temporal's mTLS ----------------------------------------------------------------------------
# The server's name is `temporal` (its compose service); clients check it (TEMPORAL_TLS_SERVER_NAME).
DAYS_CA=3650
DAYS_LEAF=825
key() {  # a P-256 key in PKCS#8, which Go, rustls (the Python SDK) and OpenSSL all read
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
}
serial() { echo "0x$(openssl rand -hex 16)"; }

if [ ! -e "$dir/temporal_ca_cert" ]; then
    # A new CA invalidates every certificate of the old one: issue all of them again.
    rm -f "$dir/temporal_server_cert" "$dir/temporal_client_cert"
    key "$dir/temporal_ca_key"
    openssl req -x509 -new -key "$dir/temporal_ca_key" -sha256 -days "$DAYS_CA" \
        -subj "/CN=runcap Temporal CA" -set_serial "$(serial)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/temporal_ca_cert"
    chmod 600 "$dir/temporal_ca_key"
    chmod 644 "$dir/temporal_ca_cert"
    echo "made $dir/temporal_ca_cert (its key: temporal_ca_key, mounted nowhere)"
fi

issue() {  # name, common name, extensions: a key and a certificate signed by the CA
    if [ -e "$dir/$1_cert" ]; then
        return
    fi
    key "$dir/$1_key"
    extensions="$dir/.$1.ext"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "$3" > "$extensions"
    openssl req -new -key "$dir/$1_key" -subj "/CN=$2" |
        openssl x509 -req -CA "$dir/temporal_ca_cert" -CAkey "$dir/temporal_ca_key" \
            -set_serial "$(serial)" -sha256 -days "$DAYS_LEAF" -extfile "$extensions" \
            -out "$dir/$1_cert" 2>/dev/null
    rm -f "$extensions"
    chmod 644 "$dir/$1_key" "$dir/$1_cert"
    echo "made $dir/$1_cert and $dir/$1_key"
}

# The server's certificate serves the frontend and its own services' traffic, and is the
# client certificate of its system worker (so clientAuth too).
issue temporal_server temporal \
    "extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:temporal,DNS:localhost,IP:127.0.0.1"
issue temporal_client runcap "extendedKeyUsage=clientAuth"

echo "put a provider key in $dir/runcap_openai_api_key or runcap_anthropic_api_key"
