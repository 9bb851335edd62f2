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
#   its threads), the non-2xx counts, the ratio secure-api / bare of the medians, and the
#   median of the per-round ratios (each round's runs are seconds apart, so a machine whose
#   speed drifts between rounds disturbs these least); with REDIS=1, redis / memory and
#   redis-server's CPU time per request;
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
# PEER=1 adds a third server, benches/load/peer_users: the same endpoint as users_limits built
# the way actix-web users build it today (validator with hand normalisation, actix-governor
# keyed by client address at the anonymous tier's 10/s, DefaultHeaders with the same security
# headers, JSON errors), on PEER_PORT, with TRUSTED_PROXY=127.0.0.1/32 like secure-api. Each
# round measures bare, peer and secure-api (forward order on odd rounds, reversed on even
# ones); the checks run on all three (the peer's per-client limit too), and the summary adds
# the ratios of CPU per request peer / secure-api and bare / secure-api (above 1.00: secure-api
# uses less CPU per request). Use it with SECURE_BIN=users_limits: the peer is not idempotent.
#
# REDIS=1 compares users_api on Redis with users_api in memory instead (the same binary, with
# and without REDIS_URL): it starts its own redis-server (from PATH, 7.0 or later) on a free
# loopback port from REDIS_PORT (16379) up, without persistence, and runs the Redis server of
# each round with REDIS_URL, KEY_SECRET and JWT_SECRET set (every store on Redis: limits and
# idempotency are what the load uses). Redis is flushed before each run, as each in-memory
# server starts empty. The checks run on both servers, and the Redis one must also replay a
# key and have written its keys to Redis. It also prints redis-server's CPU time per request
# (from /proc). The in-memory server listens on BARE_PORT, the Redis one on SECURE_PORT.
#
# PIN=1 pins each server to CPU 1 and wrk to CPU 0 (taskset): on a 2-core machine, unpinned
# runs flip between regimes (who shares a core with whom, how many requests each wakeup
# finds) and CPU per request varies by up to 2x from round to round; pinned, it does not.
#
# Knobs (environment): SECURE_BIN (users_api), BARE_HEADERS (0), REDIS (0), PEER (0), PIN (0), ROUNDS (9),
# DURATION (1 s), CONNECTIONS (32), THREADS (1), BARE_PORT (18080), SECURE_PORT (18081),
# PEER_PORT (18082), REDIS_PORT (16379, the first port tried), XFF_POOL (see users.lua). With the
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
PEER_PORT=${PEER_PORT:-18082}
LUA="$ROOT/benches/load/users.lua"
BODY='{"username":"alice_01","email":"alice@example.com","age":30}'
EXPECTED='{"email":"alice@example.com","user":"alice_01"}'

REDIS=${REDIS:-0}
PEER=${PEER:-0}
PIN=${PIN:-0}
SERVER_CPU=()
WRK_CPU=()
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null || { echo "run.sh: PIN=1 needs taskset" >&2; exit 2; }
  SERVER_CPU=(taskset -c 1)
  WRK_CPU=(taskset -c 0)
fi
SECURE_BIN=${SECURE_BIN:-users_api}
TOOLS="wrk curl cargo"
if [ "$REDIS" = 1 ]; then
  # The reference server and the measured one: users_api in memory, then on Redis.
  A=memory
  B=redis
  TOOLS="$TOOLS redis-server redis-cli"
  if [ "$SECURE_BIN" != users_api ]; then
    echo "run.sh: REDIS=1 measures users_api (the example that reads REDIS_URL)" >&2
    exit 2
  fi
  if [ "$PEER" = 1 ]; then
    echo "run.sh: PEER=1 and REDIS=1 are separate comparisons; choose one" >&2
    exit 2
  fi
else
  A=bare
  B=secure
fi
# The servers of each round, in the order of odd rounds (even rounds reverse it).
SERVERS=("$A" "$B")
if [ "$PEER" = 1 ]; then
  SERVERS=(bare peer secure)
fi
for tool in $TOOLS; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/examples"

echo "== build"
if [ "$REDIS" = 1 ]; then
  cargo build --release --example users_api
else
  extra=()
  if [ "$PEER" = 1 ]; then extra=(--example peer_users); fi
  cargo build --release --example "$SECURE_BIN" --example bare_users "${extra[@]}"
fi

LOG_DIR=$(mktemp -d)
PIDS=()
REDIS_PID=
cleanup() {
  local pid
  for pid in "${PIDS[@]}" $REDIS_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$LOG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_of() {
  case "$1" in
    bare | memory) echo "$BARE_PORT" ;;
    peer) echo "$PEER_PORT" ;;
    *) echo "$SECURE_PORT" ;;
  esac
}

# The shared secrets of the Redis server (any 32 bytes or more; fixed, so runs compare).
KEY_SECRET_VALUE=run.sh-key-derivation-secret-0123456789
JWT_SECRET_VALUE=run.sh-jwt-signing-secret-0123456789abcdef

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

if [ "$REDIS" = 1 ]; then
  echo "== redis-server"
  REDIS_PORT=${REDIS_PORT:-16379}
  # The first port from REDIS_PORT up where nothing listens.
  while (echo >"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; do
    REDIS_PORT=$((REDIS_PORT + 1))
  done
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --maxmemory-policy noeviction --dir "$LOG_DIR" >"$LOG_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    [ "$(rcli ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  if [ "$(rcli ping 2>/dev/null)" != PONG ]; then
    echo "run.sh: redis-server did not start on port $REDIS_PORT" >&2
    cat "$LOG_DIR/redis.log" >&2
    exit 2
  fi
  echo "$(redis-server --version | cut -d' ' -f1-3) on port $REDIS_PORT, pid $REDIS_PID"
fi

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
  case "$1" in
    bare)
      WORKERS=1 RUST_LOG=warn BIND="127.0.0.1:$port" BARE_HEADERS="${BARE_HEADERS:-0}" \
        "${SERVER_CPU[@]}" "$BIN/bare_users" >>"$LOG_DIR/bare.log" 2>&1 &
      ;;
    peer)
      WORKERS=1 RUST_LOG=warn BIND="127.0.0.1:$port" TRUSTED_PROXY=127.0.0.1/32 \
        "${SERVER_CPU[@]}" "$BIN/peer_users" >>"$LOG_DIR/peer.log" 2>&1 &
      ;;
    redis)
      # Every run starts from an empty Redis, as every in-memory server starts empty.
      rcli flushall >/dev/null
      WORKERS=1 RUST_LOG=warn BIND="127.0.0.1:$port" TRUSTED_PROXY=127.0.0.1/32 \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" KEY_SECRET="$KEY_SECRET_VALUE" \
        JWT_SECRET="$JWT_SECRET_VALUE" DEMO_PASSWORD=run.sh-demo-password \
        "${SERVER_CPU[@]}" "$BIN/users_api" >>"$LOG_DIR/redis.log" 2>&1 &
      ;;
    *)
      WORKERS=1 RUST_LOG=warn BIND="127.0.0.1:$port" TRUSTED_PROXY=127.0.0.1/32 \
        JWT_SECRET="$JWT_SECRET_VALUE" DEMO_PASSWORD=run.sh-demo-password \
        "${SERVER_CPU[@]}" "$BIN/$SECURE_BIN" >>"$LOG_DIR/$1.log" 2>&1 &
      ;;
  esac
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

# check_limit NAME: a burst of 12 from one client gets 10 x 201 then 2 x 429; another
# client is still served. The burst is one curl process on one connection (--next), so
# that it takes milliseconds even on a busy machine: the limit refills one request every
# 100 ms.
check_limit() {
  local port codes other n201 n429 i args
  port=$(port_of "$1")
  args=()
  for i in $(seq 1 12); do
    [ "$i" = 1 ] || args+=(--next)
    args+=(-s --max-time 5 -o /dev/null -w '%{http_code} ' -X POST
      -H 'content-type: application/json' -H 'x-forwarded-for: 11.99.99.99'
      -H "idempotency-key: kburst$i-$RANDOM" --data "$BODY" "http://127.0.0.1:$port/api/users")
  done
  codes=" $(curl "${args[@]}" || true)"
  other=$(post "$port" 11.99.99.98 "kother$RANDOM")
  echo "$1, 12 requests from one client:$codes; then another client: $other"
  n201=$(echo "$codes" | tr ' ' '\n' | grep -c '^201$' || true)
  n429=$(echo "$codes" | tr ' ' '\n' | grep -c '^429$' || true)
  if [ "$n201" != "10" ] || [ "$n429" != "2" ] || [ "$other" != "201" ]; then
    echo "run.sh: $1's per-client limit does not behave as expected" >&2
    exit 1
  fi
}

echo "== check responses"
CHECK_PIDS=()
for name in "${SERVERS[@]}"; do
  start "$name"
  CHECK_PIDS+=("$SERVER_PID")
done
for name in "${SERVERS[@]}"; do
  status=$(post "$(port_of "$name")" 11.1.2.3 "kcheck$RANDOM$RANDOM")
  body=$(cat "$LOG_DIR/body")
  echo "$name: $status $body"
  if [ "$status" != "201" ] || [ "$body" != "$EXPECTED" ]; then
    echo "run.sh: $name did not answer 201 with the expected body" >&2
    exit 1
  fi
done
if [ "$REDIS" = 1 ]; then
  check_limit memory
  check_limit redis
  # The Redis server replays a key and keeps its state in Redis, under its key prefix.
  key="kreplay$RANDOM$RANDOM"
  post "$SECURE_PORT" 11.1.2.4 "$key" >/dev/null
  replayed=$(curl -s --max-time 5 -o /dev/null -D - -X POST -H 'content-type: application/json' \
    -H 'x-forwarded-for: 11.1.2.4' -H "idempotency-key: $key" --data "$BODY" \
    "http://127.0.0.1:$SECURE_PORT/api/users" | tr -d '\r' | grep -ci '^idempotent-replayed: true$' || true)
  keys=$(rcli --scan --pattern 'users_api:*' | wc -l)
  echo "redis: a repeated key replayed: $replayed; keys in Redis under users_api: $keys"
  if [ "$replayed" != 1 ] || [ "$keys" -lt 1 ]; then
    echo "run.sh: the Redis server does not keep its state in Redis" >&2
    exit 1
  fi
else
  check_limit secure
  if [ "$PEER" = 1 ]; then check_limit peer; fi
fi
for pid in "${CHECK_PIDS[@]}"; do stop "$pid"; done

# bench NAME: runs wrk against a fresh server; sets LINE to "RESULT ... cpu_us=X util=Y".
bench() {
  local port before after line
  start "$1"
  port=$(port_of "$1")
  machine_before=$(machine_busy_ns)
  redis_before=0
  if [ -n "$REDIS_PID" ]; then redis_before=$(cpu_ns "$REDIS_PID"); fi
  before=$(cpu_ns "$SERVER_PID")
  echo "0 0" >"$LOG_DIR/wrk.cpu"
  "${TIME[@]}" "${WRK_CPU[@]}" timeout $((DURATION + 20)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    --timeout 5s -s "$LUA" "http://127.0.0.1:$port/api/users" >"$LOG_DIR/wrk.out" 2>&1 || {
    cat "$LOG_DIR/wrk.out" >&2
    exit 2
  }
  after=$(cpu_ns "$SERVER_PID")
  redis_after=0
  if [ -n "$REDIS_PID" ]; then redis_after=$(cpu_ns "$REDIS_PID"); fi
  machine_after=$(machine_busy_ns)
  stop "$SERVER_PID"
  line=$(grep '^RESULT' "$LOG_DIR/wrk.out") || {
    cat "$LOG_DIR/wrk.out" >&2
    exit 2
  }
  # redis-server's CPU during the run counts for the Redis server only (the in-memory one
  # leaves it idle); it is never "other".
  LINE=$(awk -v line="$line" -v cpu=$((after - before)) -v d="$DURATION" \
    -v redis=$((redis_after - redis_before)) \
    -v machine=$((machine_after - machine_before)) -v wrk="$(cat "$LOG_DIR/wrk.cpu")" 'BEGIN {
    n = split(line, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
    split(wrk, w, " "); wrk_ns = (w[1] + w[2]) * 1e9
    other = wrk_ns > 0 ? sprintf("%.0f", 100 * (machine - cpu - redis - wrk_ns) / (d * 1e9)) : "?"
    printf "%s cpu_us=%.2f util=%.0f wrk=%.0f other=%s redis_us=%.2f redis_util=%.0f\n", line,
      cpu / 1000 / v["requests"], 100 * cpu / (d * 1e9), 100 * wrk_ns / (d * 1e9), other,
      redis / 1000 / v["requests"], 100 * redis / (d * 1e9) }')
}

field() { # field NAME LINE
  echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, fresh servers each round"
# Per server: the req/s and CPU us/req of each round, space-separated.
declare -A RPS CPU
B_REDIS=()
OTHERS=()
total=0
bad=0
unavailable=0
noisy=0
for round in $(seq 1 "$ROUNDS"); do
  order=()
  if [ $((round % 2)) -eq 1 ]; then
    order=("${SERVERS[@]}")
  else
    for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[i]}"); done
  fi
  for name in "${order[@]}"; do
    bench "$name"
    line=$LINE
    rps=$(field rps "$line")
    cpu=$(field cpu_us "$line")
    total=$((total + $(field responses "$line")))
    bad=$((bad + $(field non2xx "$line") + $(field socket_errors "$line")))
    unavailable=$((unavailable + $(field n503 "$line")))
    RPS[$name]="${RPS[$name]:-}${RPS[$name]:+ }$rps"
    CPU[$name]="${CPU[$name]:-}${CPU[$name]:+ }$cpu"
    if [ "$name" = "$B" ]; then
      B_REDIS+=("$(field redis_us "$line")")
    fi
    redis_part=""
    if [ "$name" = redis ]; then
      redis_part=$(printf '  redis-server %s us CPU/req (%s%% of a core)' \
        "$(field redis_us "$line")" "$(field redis_util "$line")")
    fi
    printf 'round %d  %-6s %9s req/s  %6s us CPU/req  CPU%%: server %3s wrk %3s other %3s  non2xx=%s (429: %s, 503: %s) socket_errors=%s  p50=%sus p99=%sus%s\n' \
      "$round" "$name" "$rps" "$cpu" "$(field util "$line")" "$(field wrk "$line")" \
      "$(field other "$line")" "$(field non2xx "$line")" "$(field n429 "$line")" \
      "$(field n503 "$line")" "$(field socket_errors "$line")" "$(field p50_us "$line")" \
      "$(field p99_us "$line")" "$redis_part"
    other=$(field other "$line")
    if [ "$other" != "?" ]; then
      OTHERS+=("$other")
      if [ "$other" -gt 15 ]; then noisy=$((noisy + 1)); fi
    fi
  done
done

declare -A RPS_MEDIAN CPU_MEDIAN
echo "== summary (medians of $ROUNDS rounds)"
for name in "${SERVERS[@]}"; do
  # shellcheck disable=SC2086 # the lists are space-separated numbers
  RPS_MEDIAN[$name]=$(median ${RPS[$name]})
  # shellcheck disable=SC2086
  CPU_MEDIAN[$name]=$(median ${CPU[$name]})
  # The least disturbed run as well: on a busy machine contention only adds CPU per request.
  # shellcheck disable=SC2086
  cpu_min=$(printf '%s\n' ${CPU[$name]} | sort -g | head -1)
  printf '%-7s CPU us/req: %s  median %s (min %s);  req/s: %s  median %s\n' "$name" \
    "${CPU[$name]}" "${CPU_MEDIAN[$name]}" "$cpu_min" "${RPS[$name]}" "${RPS_MEDIAN[$name]}"
done
a_median=${RPS_MEDIAN[$A]}
b_median=${RPS_MEDIAN[$B]}
a_cpu=${CPU_MEDIAN[$A]}
b_cpu=${CPU_MEDIAN[$B]}
if [ "$REDIS" = 1 ]; then
  b_redis=$(median "${B_REDIS[@]}")
  echo "redis-server CPU us/req: ${B_REDIS[*]}  median $b_redis"
  awk -v r="$b_median" -v m="$a_median" -v rc="$b_cpu" -v mc="$a_cpu" -v rr="$b_redis" 'BEGIN {
    printf "ratio redis / memory, req/s: %.3f (%.1f%%)\n", r / m, 100 * r / m
    printf "CPU per request, app + redis-server on Redis / app in memory: (%.2f + %.2f) / %.2f = %.3f\n",
      rc, rr, mc, (rc + rr) / mc }'
else
  awk -v s="$b_median" -v b="$a_median" -v sc="$b_cpu" -v bc="$a_cpu" 'BEGIN {
    printf "ratio secure-api / bare, req/s: %.3f (%.1f%%)\n", s / b, 100 * s / b
    printf "ratio bare / secure-api, CPU per request: %.3f (%.1f%%)\n", bc / sc, 100 * bc / sc }'
  if [ "$PEER" = 1 ]; then
    awk -v s="$b_median" -v p="${RPS_MEDIAN[peer]}" -v sc="$b_cpu" -v pc="${CPU_MEDIAN[peer]}" 'BEGIN {
      printf "ratio secure-api / peer, req/s: %.3f (%.1f%%)\n", s / p, 100 * s / p
      printf "ratio peer / secure-api, CPU per request: %.3f (%.1f%%)\n", pc / sc, 100 * pc / sc }'
  fi
  # The ratios of each round's own runs (seconds apart), then their median: robust to a
  # machine whose speed drifts between rounds, as a shared VM's does.
  paired() { # paired NAME: the median over rounds of CPU[NAME] / CPU[secure]
    awk -v a="${CPU[$1]}" -v b="${CPU[$B]}" 'BEGIN {
      n = split(a, x, " "); split(b, y, " ")
      for (i = 1; i <= n; i++) r[i] = x[i] / y[i]
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
      printf "%.3f", (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2 }'
  }
  line="paired (median of per-round ratios), CPU per request: bare / secure-api $(paired "$A")"
  if [ "$PEER" = 1 ]; then line="$line, peer / secure-api $(paired peer)"; fi
  echo "$line"
fi
if [ "${#OTHERS[@]}" -gt 0 ]; then
  printf '%s\n' "${OTHERS[@]}" | sort -g | awk '{ a[NR] = $1 } END {
    printf "other processes, %% of a core per run: min %d, median %d, max %d\n", a[1],
      (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[NR] }'
fi
echo "non-2xx responses and socket errors: $bad of $total responses ($unavailable were 503)"
if [ "$noisy" -gt 0 ]; then
  echo "WARNING: in $noisy runs other processes used more than 15% of a core: numbers are noisy"
fi
if [ $((bad * 100)) -gt "$total" ]; then
  echo "run.sh: more than 1% of the responses were not 2xx: the setup is wrong" >&2
  exit 1
fi
