#!/usr/bin/env bash
# End-to-end load test on loopback: examples/users_api (the full secure-api stack) against
# benches/load/bare_users (the same JSON work on bare actix-web), with wrk.
#
#   CARGO_TARGET_DIR=target-bench benches/load/run.sh
#
# - builds both with --release (into $CARGO_TARGET_DIR if set, else ./target); bare_users and
#   users_limits live here but are declared as `[[example]]`s in the root Cargo.toml;
# - runs each server on its own loopback port with WORKERS=1 and RUST_LOG=warn (users_api
#   also with TRUSTED_PROXY=127.0.0.1/32, so that it believes wrk's X-Forwarded-For);
# - checks with curl that both answer 201 with the expected JSON, and that users_api's
#   per-client limit is live and keyed by X-Forwarded-For (a burst of 12 from one client
#   gets 10 x 201 then 2 x 429; another client is still served);
# - runs wrk against each in turn, the order alternating per round, ROUNDS x DURATION
#   seconds each, with benches/load/users.lua: a valid POST body, a random public client IP
#   per request (so that the per-client limit, 10/s per IP for anonymous clients, never
#   refuses a request: the test measures the allow path) and a new Idempotency-Key per
#   request (users_api's endpoint is `idempotent`, which requires one);
# - prints req/s per round, the server's CPU time per request (from /proc, summed over
#   its threads), the non-2xx counts, and the ratio secure-api / bare of the medians;
#   exits 1 if more than 1% of the responses were not 2xx (the setup is wrong).
#
# Every run of wrk gets a freshly started server, and only one server runs at a time.
# users_api keeps completed idempotent requests in a store bounded to 100,000 entries; when
# it is full the oldest responses are dropped (so long runs measure a full store too).
#
# SECURE_BIN=users_limits measures benches/load/users_limits instead: the same endpoint without
# `idempotent`, to separate the cost of idempotency from the rest of the stack.
#
# BARE_HEADERS=1 makes the bare server send the same response headers as secure-api, to
# separate the cost of those bytes from the cost of the work.
#
# Knobs (environment): SECURE_BIN (users_api), BARE_HEADERS (0), ROUNDS (9), DURATION (1 s), CONNECTIONS (32),
# THREADS (1), BARE_PORT (18080), SECURE_PORT (18081), XFF_POOL (see users.lua). With the
# defaults the measurement takes about 30 s after the build; servers are killed on exit.
# Per round it also prints the CPU used by the server, by wrk and by anything else ("other",
# e.g. a build running meanwhile: such rounds are flagged as noisy).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-9}
DURATION=${DURATION:-1}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
BARE_PORT=${BARE_PORT:-18080}
SECURE_PORT=${SECURE_PORT:-18081}
LUA="$ROOT/benches/load/users.lua"
BODY='{"username":"alice_01","email":"alice@example.com","age":30}'
EXPECTED='{"email":"alice@example.com","user":"alice_01"}'

for tool in wrk curl cargo; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/examples"

echo "== build"
SECURE_BIN=${SECURE_BIN:-users_api}
cargo build --release --example "$SECURE_BIN" --example bare_users

LOG_DIR=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$LOG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_of() { if [ "$1" = bare ]; then echo "$BARE_PORT"; else echo "$SECURE_PORT"; fi; }

# post PORT XFF KEY: prints the status code; the body goes to $LOG_DIR/body.
post() {
  curl -s --max-time 5 -o "$LOG_DIR/body" -w '%{http_code}' -X POST \
    -H 'content-type: application/json' -H "x-forwarded-for: $2" -H "idempotency-key: $3" \
    --data "$BODY" "http://127.0.0.1:$1/api/users" || true
}

# start NAME: starts a fresh server and waits until it answers; sets SERVER_PID.
start() {
  local port
  port=$(port_of "$1")
  if [ "$1" = bare ]; then
    WORKERS=1 RUST_LOG=warn BIND="127.0.0.1:$port" BARE_HEADERS="${BARE_HEADERS:-0}" \
      "$BIN/bare_users" >>"$LOG_DIR/bare.log" 2>&1 &
  else
    WORKERS=1 RUST_LOG=warn BIND="127.0.0.1:$port" TRUSTED_PROXY=127.0.0.1/32 \
      "$BIN/$SECURE_BIN" >>"$LOG_DIR/secure.log" 2>&1 &
  fi
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  local _
  for _ in $(seq 1 100); do
    if [ "$(post "$port" 11.0.0.1 "kup$RANDOM$RANDOM")" != "000" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "run.sh: $1 did not come up on port $port" >&2
  cat "$LOG_DIR"/*.log >&2
  exit 2
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Nanoseconds of CPU used by all threads of process $1 so far.
cpu_ns() {
  local sum=0 t ns _
  for t in /proc/"$1"/task/*/schedstat; do
    read -r ns _ <"$t" 2>/dev/null || continue
    sum=$((sum + ns))
  done
  echo "$sum"
}

# CPU time (ns) the whole machine has spent busy so far, from /proc/stat.
machine_busy_ns() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.0f\n", ($2 + $3 + $4 + $7 + $8) * 1e9 / hz }' /proc/stat
}

# wrk's own CPU time goes to $LOG_DIR/wrk.cpu when GNU time is there, so that the CPU used by
# anything else (another build on the machine) can be reported per round as "other".
TIME=()
if [ -x /usr/bin/time ]; then
  TIME=(/usr/bin/time -f '%U %S' -o "$LOG_DIR/wrk.cpu")
fi

echo "== check responses"
start bare
BARE_PID=$SERVER_PID
start secure
SECURE_PID=$SERVER_PID
for name in bare secure; do
  status=$(post "$(port_of "$name")" 11.1.2.3 "kcheck$RANDOM$RANDOM")
  body=$(cat "$LOG_DIR/body")
  echo "$name: $status $body"
  if [ "$status" != "201" ] || [ "$body" != "$EXPECTED" ]; then
    echo "run.sh: $name did not answer 201 with the expected body" >&2
    exit 1
  fi
done
codes=""
for i in $(seq 1 12); do
  codes="$codes $(post "$SECURE_PORT" 11.99.99.99 "kburst$i-$RANDOM")"
done
other=$(post "$SECURE_PORT" 11.99.99.98 "kother$RANDOM")
echo "secure, 12 requests from one client:$codes; then another client: $other"
n201=$(echo "$codes" | tr ' ' '\n' | grep -c '^201$' || true)
n429=$(echo "$codes" | tr ' ' '\n' | grep -c '^429$' || true)
if [ "$n201" != "10" ] || [ "$n429" != "2" ] || [ "$other" != "201" ]; then
  echo "run.sh: users_api's per-client limit does not behave as expected" >&2
  exit 1
fi
stop "$BARE_PID"
stop "$SECURE_PID"

# bench NAME: runs wrk against a fresh server; sets LINE to "RESULT ... cpu_us=X util=Y".
bench() {
  local port before after line
  start "$1"
  port=$(port_of "$1")
  machine_before=$(machine_busy_ns)
  before=$(cpu_ns "$SERVER_PID")
  echo "0 0" >"$LOG_DIR/wrk.cpu"
  "${TIME[@]}" timeout $((DURATION + 20)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    --timeout 5s -s "$LUA" "http://127.0.0.1:$port/api/users" >"$LOG_DIR/wrk.out" 2>&1 || {
    cat "$LOG_DIR/wrk.out" >&2
    exit 2
  }
  after=$(cpu_ns "$SERVER_PID")
  machine_after=$(machine_busy_ns)
  stop "$SERVER_PID"
  line=$(grep '^RESULT' "$LOG_DIR/wrk.out") || {
    cat "$LOG_DIR/wrk.out" >&2
    exit 2
  }
  LINE=$(awk -v line="$line" -v cpu=$((after - before)) -v d="$DURATION" \
    -v machine=$((machine_after - machine_before)) -v wrk="$(cat "$LOG_DIR/wrk.cpu")" 'BEGIN {
    n = split(line, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
    split(wrk, w, " "); wrk_ns = (w[1] + w[2]) * 1e9
    other = wrk_ns > 0 ? sprintf("%.0f", 100 * (machine - cpu - wrk_ns) / (d * 1e9)) : "?"
    printf "%s cpu_us=%.2f util=%.0f wrk=%.0f other=%s\n", line, cpu / 1000 / v["requests"],
      100 * cpu / (d * 1e9), 100 * wrk_ns / (d * 1e9), other }')
}

field() { # field NAME LINE
  echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, fresh servers each round"
BARE_RPS=()
SECURE_RPS=()
BARE_CPU=()
SECURE_CPU=()
total=0
bad=0
unavailable=0
noisy=0
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="bare secure"; else order="secure bare"; fi
  for name in $order; do
    bench "$name"
    line=$LINE
    rps=$(field rps "$line")
    cpu=$(field cpu_us "$line")
    total=$((total + $(field responses "$line")))
    bad=$((bad + $(field non2xx "$line") + $(field socket_errors "$line")))
    unavailable=$((unavailable + $(field n503 "$line")))
    if [ "$name" = bare ]; then
      BARE_RPS+=("$rps")
      BARE_CPU+=("$cpu")
    else
      SECURE_RPS+=("$rps")
      SECURE_CPU+=("$cpu")
    fi
    printf 'round %d  %-6s %9s req/s  %6s us CPU/req  CPU%%: server %3s wrk %3s other %3s  non2xx=%s (429: %s, 503: %s) socket_errors=%s  p50=%sus p99=%sus\n' \
      "$round" "$name" "$rps" "$cpu" "$(field util "$line")" "$(field wrk "$line")" \
      "$(field other "$line")" "$(field non2xx "$line")" "$(field n429 "$line")" \
      "$(field n503 "$line")" "$(field socket_errors "$line")" "$(field p50_us "$line")" \
      "$(field p99_us "$line")"
    other=$(field other "$line")
    if [ "$other" != "?" ] && [ "$other" -gt 15 ]; then noisy=$((noisy + 1)); fi
  done
done

bare_median=$(median "${BARE_RPS[@]}")
secure_median=$(median "${SECURE_RPS[@]}")
bare_cpu=$(median "${BARE_CPU[@]}")
secure_cpu=$(median "${SECURE_CPU[@]}")
echo "== summary (medians of $ROUNDS rounds)"
echo "bare    req/s: ${BARE_RPS[*]}  median $bare_median;  CPU us/req median $bare_cpu"
echo "secure  req/s: ${SECURE_RPS[*]}  median $secure_median;  CPU us/req median $secure_cpu"
awk -v s="$secure_median" -v b="$bare_median" -v sc="$secure_cpu" -v bc="$bare_cpu" 'BEGIN {
  printf "ratio secure-api / bare, req/s: %.3f (%.1f%%)\n", s / b, 100 * s / b
  printf "ratio bare / secure-api, CPU per request: %.3f (%.1f%%)\n", bc / sc, 100 * bc / sc }'
echo "non-2xx responses and socket errors: $bad of $total responses ($unavailable were 503)"
if [ "$noisy" -gt 0 ]; then
  echo "WARNING: in $noisy runs other processes used more than 15% of a core: numbers are noisy"
fi
if [ $((bad * 100)) -gt "$total" ]; then
  echo "run.sh: more than 1% of the responses were not 2xx: the setup is wrong" >&2
  exit 1
fi
