#!/usr/bin/env bash
# Schema-driven API fuzzing (issue 14): starts pforte (target/debug/pforte, built before) on a free
# loopback port with a temporary SQLite database and the simulators on, fetches a payment token for
# the demo client, runs schemathesis against the served OpenAPI document and returns its exit code.
# Usage: tests/schemathesis/run.sh [extra schemathesis arguments, e.g. --max-examples=500]
# SCHEMATHESIS_MAX_EXAMPLES (default 100; about 100 s on 2 cores) bounds the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=tests/schemathesis
VENV=.venv-schemathesis
BIN=${PFORTE_BIN:-target/debug/pforte}

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
[ -x "$BIN" ] || { echo "$BIN is missing: run cargo build --locked first" >&2; exit 1; }

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PFORTE__SERVER__LISTEN="127.0.0.1:$PORT" \
PFORTE__SERVER__PUBLIC_URL="$URL" \
PFORTE__DATABASE__URL="sqlite://$WORK/pforte.db" \
PFORTE__KEYS__MASTER_KEY="file:$WORK/master.key" \
PFORTE__DEV__SIMULATORS=true \
PFORTE__LOG__LEVEL=warn \
  "$BIN" --config config/default.toml serve >"$WORK/pforte.log" 2>&1 &
PID=$!

# Wait (up to 60 s) until pforte answers /readyz.
for _ in $(seq 1 120); do
  curl -sf "$URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/pforte.log" >&2; echo "pforte exited" >&2; exit 1; }
  sleep 0.5
done
curl -sf "$URL/readyz" >/dev/null || { cat "$WORK/pforte.log" >&2; echo "pforte not ready" >&2; exit 1; }

TOKEN=$(curl -sf -u demo:demo-secret-change-me -d grant_type=client_credentials -d scope=payment "$URL/token" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

# One payment to read, cancel and refund, so those operations get past the 404 of an unknown id.
# The redirectUrl must be on an origin the demo client registered ({public_url}, SECURITY.md #3).
CREATED=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"requestId":"SCHEMATHESIS-1","requestTimestamp":"2026-11-29T10:00:00+01:00","currency":"EUR","grosAmount":12.00,"purpose":"Schemathesis","redirectUrl":"'"$URL"'/demo","items":[{"totalNetAmount":12.00}]}' \
  "$URL/paymenttransaction/demo-service/09162000")
PFORTE_TRANSACTION_ID=$(printf '%s' "$CREATED" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["paymentInformation"]["transactionId"])') \
  || { echo "creating the seed payment failed: $CREATED" >&2; exit 1; }
export PFORTE_TRANSACTION_ID

set +e
"$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$URL/openapi/payment-api.json" \
  --url "$URL" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  "$@"
STATUS=$?
set -e
if [ "$STATUS" -ne 0 ]; then
  echo "--- pforte's log (last 50 lines)" >&2
  tail -n 50 "$WORK/pforte.log" >&2
fi
exit "$STATUS"
