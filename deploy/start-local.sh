#!/usr/bin/env bash
# Run Prometheus and Alertmanager on loopback against a local drift exporter, with the rules and
# routing of deploy/. Data lives under .local/alerting/ in the project. Ctrl-C stops both.
#
#   drift-assets serve-metrics ...        # the exporter, 127.0.0.1:8000 by default
#   deploy/start-local.sh                 # then this, in another terminal
#
# Environment (defaults in brackets):
#   PROMETHEUS_PORT [9090]  ALERTMANAGER_PORT [9093]  EXPORTER_ADDR [127.0.0.1:8000]
#   LOCAL_DIR [<project>/.local/alerting]
#   PROMETHEUS_BIN, ALERTMANAGER_BIN (default: prometheus, then alertmanager or
#   prometheus-alertmanager from PATH)
#
# Slack/PagerDuty secrets: deploy/alertmanager/secrets/ (see the README there). Without them
# alerts are still listed by the Alertmanager API (/api/v2/alerts, amtool); only sending fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$ROOT/deploy"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9093}"
EXPORTER_ADDR="${EXPORTER_ADDR:-127.0.0.1:8000}"
LOCAL_DIR="${LOCAL_DIR:-$ROOT/.local/alerting}"

find_bin() {  # first of the given names found on PATH
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(find_bin prometheus || true)}"
ALERTMANAGER_BIN="${ALERTMANAGER_BIN:-$(find_bin alertmanager prometheus-alertmanager || true)}"
if [[ -z "$PROMETHEUS_BIN" || -z "$ALERTMANAGER_BIN" ]]; then
  echo "start-local: prometheus and alertmanager are needed (Debian: apt-get install prometheus prometheus-alertmanager)" >&2
  exit 1
fi

mkdir -p "$LOCAL_DIR/prometheus-data" "$LOCAL_DIR/alertmanager-data"
# Keep generated configs and data out of git even without a rule in the project's .gitignore.
if [[ "$LOCAL_DIR" == "$ROOT/.local/"* && ! -f "$ROOT/.local/.gitignore" ]]; then
  printf '*\n' > "$ROOT/.local/.gitignore"
fi

# Prometheus config: the committed one with the exporter/Alertmanager addresses of this run and
# the rule files by absolute path (the generated file lives elsewhere).
PROM_CONFIG="$LOCAL_DIR/prometheus.yml"
sed -e "s#127\.0\.0\.1:8000#${EXPORTER_ADDR}#g" \
    -e "s#127\.0\.0\.1:9093#127.0.0.1:${ALERTMANAGER_PORT}#g" \
    -e "s#^\(  - \)rules/#\1${DEPLOY}/prometheus/rules/#" \
    "$DEPLOY/prometheus/prometheus.yml" > "$PROM_CONFIG"

# Alertmanager config: the committed one, secrets read from deploy/alertmanager/secrets/.
AM_CONFIG="$LOCAL_DIR/alertmanager.yml"
sed -e "s#/etc/alertmanager/secrets/#${DEPLOY}/alertmanager/secrets/#g" \
    "$DEPLOY/alertmanager/alertmanager.yml" > "$AM_CONFIG"
for secret in slack_api_url pagerduty_routing_key; do
  [[ -s "$DEPLOY/alertmanager/secrets/$secret" ]] || \
    echo "start-local: note: deploy/alertmanager/secrets/$secret is missing: alerts are listed (/api/v2/alerts) but not sent" >&2
done

if command -v promtool >/dev/null 2>&1; then
  promtool check config "$PROM_CONFIG" >/dev/null
fi

PIDS=()
cleanup() {
  trap - INT TERM EXIT
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "start-local: stopped Prometheus and Alertmanager" >&2
}
trap cleanup INT TERM EXIT

"$ALERTMANAGER_BIN" \
  --config.file="$AM_CONFIG" \
  --storage.path="$LOCAL_DIR/alertmanager-data" \
  --web.listen-address="127.0.0.1:${ALERTMANAGER_PORT}" \
  --web.external-url="http://127.0.0.1:${ALERTMANAGER_PORT}" \
  --cluster.listen-address= \
  >"$LOCAL_DIR/alertmanager.log" 2>&1 &
PIDS+=("$!")

# No --web.enable-lifecycle: it lets anyone who reaches the port stop Prometheus (POST /-/quit).
# Reload the config with `kill -HUP <pid>` instead.
"$PROMETHEUS_BIN" \
  --config.file="$PROM_CONFIG" \
  --storage.tsdb.path="$LOCAL_DIR/prometheus-data" \
  --web.listen-address="127.0.0.1:${PROMETHEUS_PORT}" \
  --web.external-url="http://127.0.0.1:${PROMETHEUS_PORT}" \
  >"$LOCAL_DIR/prometheus.log" 2>&1 &
PIDS+=("$!")

ready() {  # url -> 0 once it answers (HTTP 2xx with curl, an open port without)
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null
  else
    local hostport="${1#http://}"; hostport="${hostport%%/*}"
    (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null
  fi
}
for _ in $(seq 1 60); do
  if ready "http://127.0.0.1:${PROMETHEUS_PORT}/-/ready" && ready "http://127.0.0.1:${ALERTMANAGER_PORT}/-/ready"; then break; fi
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start-local: a server exited early; logs in $LOCAL_DIR:" >&2
      tail -n 20 "$LOCAL_DIR/prometheus.log" "$LOCAL_DIR/alertmanager.log" >&2 || true
      exit 1
    fi
  done
  sleep 0.5
done

cat <<EOF
Prometheus:   http://127.0.0.1:${PROMETHEUS_PORT}/classic/alerts   (targets: http://127.0.0.1:${PROMETHEUS_PORT}/classic/targets)
Alertmanager: http://127.0.0.1:${ALERTMANAGER_PORT}/api/v2/alerts   (no web UI in Debian's package; or: amtool alert query --alertmanager.url=http://127.0.0.1:${ALERTMANAGER_PORT})
Exporter:     http://${EXPORTER_ADDR}/metrics   (start it with: drift-assets serve-metrics)
Logs and data: ${LOCAL_DIR}
Ctrl-C stops both.
EOF
if ! ready "http://${EXPORTER_ADDR}/metrics"; then
  echo "start-local: note: nothing answers at http://${EXPORTER_ADDR}/metrics yet" >&2
fi

# Wait until Ctrl-C, or until one of the servers dies.
while true; do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start-local: a server exited; see the logs in $LOCAL_DIR" >&2
      exit 1
    fi
  done
  sleep 1
done
