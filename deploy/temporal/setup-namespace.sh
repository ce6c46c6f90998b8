#!/bin/sh
# One-shot after Temporal is healthy: the default namespace and runcap's search attributes,
# with the temporal CLI of the admin-tools image (make prod-check runs the same script).
#
# It waits for the namespace, not just the cluster: a search attribute added before its
# namespace exists is an error, and a workflow started before the frontend's namespace cache
# has the attributes fails to upsert them. So it ends only once a visibility query that names
# every attribute is accepted. Idempotent: existing namespace and attributes are kept.
set -eu

NAMESPACE="${NAMESPACE:-default}"
RETENTION="${RETENTION:-72h}"
TRIES="${TRIES:-120}"
# name type, one per line; the same list as worker/devserver.py SEARCH_ATTRIBUTES.
SEARCH_ATTRIBUTES='
RunCost Double
RunBudget Double
RunCalls Int
RunStatus Keyword
AgentName Keyword
TaskId Keyword
RunTags KeywordList
KeyId Keyword
'

retry() {
    n=0
    until "$@" >/dev/null 2>&1; do
        n=$((n + 1))
        if [ "$n" -ge "$TRIES" ]; then
            echo "setup-namespace: gave up after $TRIES tries: $*" >&2
            "$@"
            exit 1
        fi
        sleep 1
    done
}

retry temporal operator cluster health
if ! temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
    temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
fi
retry temporal operator namespace describe --namespace "$NAMESPACE"

query=""
for pair in $(echo "$SEARCH_ATTRIBUTES" | tr ' ' ':'); do
    name="${pair%%:*}"
    kind="${pair#*:}"
    # One attribute per call: the CLI takes many --name but a single --type.
    retry temporal operator search-attribute create --namespace "$NAMESPACE" \
        --name "$name" --type "$kind"
    case "$kind" in
        Double | Int) clause="$name >= 0" ;;
        *) clause="$name = 'setup'" ;;
    esac
    query="${query:+$query AND }$clause"
done
retry temporal workflow list --namespace "$NAMESPACE" --limit 1 --query "$query"
echo "setup-namespace: namespace $NAMESPACE ready with runcap's search attributes"
