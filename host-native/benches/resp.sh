#!/usr/bin/env bash
# redis-benchmark against redis-server (without persistence, and with an AOF fsync'd every
# second) and `statemesh serve` (AP, CP, and in memory) on this machine, in one run: GET, SET,
# INCR with 50 clients, without pipelining and with -P 16. Prints a table of requests per second
# and the ratios statemesh / redis-server.
#
#   host-native/benches/resp.sh                 # builds the release binary first
#   STATEMESH=path/to/statemesh REQUESTS=200000 host-native/benches/resp.sh
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools).
# Each configuration runs ROUNDS times (default 3), alternating servers in an order that turns
# each round. The first table keeps each server's best round (the least disturbed one on a
# shared machine); the second pairs the servers within each round (they ran back to back, under
# the same load on the machine) and prints the median of the per-round ratios with their range,
# which one lucky or unlucky round cannot move.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
requests="${REQUESTS:-200000}"
requests_pipelined="${REQUESTS_PIPELINED:-1000000}"
# CP acknowledges a write only once it is on disk: fewer requests keep its runs short.
requests_cp="${REQUESTS_CP:-100000}"
rounds="${ROUNDS:-3}"
clients=50
tests="get,set,incr"

for tool in redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install redis-server redis-tools)" >&2; exit 2; }
done
if [ -z "${STATEMESH:-}" ]; then
  cargo build --release -q -p statemesh --bin statemesh --manifest-path "$here/Cargo.toml"
  STATEMESH="${CARGO_TARGET_DIR:-$here/target}/release/statemesh"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 100); do
    redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  exit 1
}

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"
# Redis persisting like AP mode does: an append-only file, fsync'd every second.
aof_port="$(free_port)"
mkdir -p "$work/aof"
redis-server --port "$aof_port" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync everysec --dir "$work/aof" --daemonize no >"$work/redis-aof.log" 2>&1 &
pids+=($!)
wait_port "$aof_port"

# Starts `statemesh serve` and sets $port. Not called as $(...): a subshell would lose the pid
# that the cleanup must kill.
start_statemesh() { # mode [--in-memory]
  local mode="$1" storage=(--data-dir "$work/data-$1")
  [ "${2:-}" = --in-memory ] && storage=(--in-memory)
  port="$(free_port)"
  "$STATEMESH" serve --port 0 --resp-port "$port" --mode "$mode" "${storage[@]}" \
    >"$work/sm-$mode${2:-}.out" 2>"$work/sm-$mode${2:-}.log" &
  pids+=($!)
  wait_port "$port"
}
start_statemesh ap
ap_port="$port"
start_statemesh cp
cp_port="$port"
# Without a data directory: no persistence at all, like redis-server with save and AOF off.
start_statemesh ap --in-memory
mem_port="$port"

# bench port pipeline server -> lines "TEST,rps"
bench() {
  local n="$requests"
  [ "$2" -gt 1 ] && n="$requests_pipelined"
  [ "$3" = cp ] && n="$requests_cp"
  redis-cli -p "$1" FLUSHDB >/dev/null
  redis-benchmark -p "$1" -c "$clients" -n "$n" -P "$2" -t "$tests" --csv 2>/dev/null |
    awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $2); print $1 "," $2 }'
}

# The order of the servers turns by one each round, so none always runs in the same place
# (first after a quiet spell, or right after a server that leaves dirty pages behind), and each
# run starts with the page cache written back: the kernel's writeback of one server's log or
# AOF must not land on the next server's run.
servers=(redis aof ap cp mem)
declare -A best each
for pipeline in 1 16; do
  for round in $(seq "$rounds"); do
    for i in "${!servers[@]}"; do
      server="${servers[$(((i + round - 1) % ${#servers[@]}))]}"
      sync
      case "$server" in
        redis) port="$redis_port" ;; aof) port="$aof_port" ;; ap) port="$ap_port" ;;
        cp) port="$cp_port" ;; mem) port="$mem_port" ;;
      esac
      while IFS=, read -r test rps; do
        key="$server/$pipeline/$test"
        each[$key/$round]="$rps"
        cur="${best[$key]:-0}"
        if awk -v a="$rps" -v b="$cur" 'BEGIN { exit !(a > b) }'; then best[$key]="$rps"; fi
      done < <(bench "$port" "$pipeline" "$server")
    done
  done
done

echo
echo "redis-benchmark, $clients clients, best of $rounds rounds; $(nproc) cores; $(date -u +%FT%TZ)"
echo "ratios are statemesh / redis-server (no persistence); AP also / redis-server with AOF everysec"
printf '%-5s %-3s %10s %10s | %10s %6s %6s | %10s %6s | %10s %6s\n' \
  test -P redis "redis AOF" "AP" ratio "/AOF" "CP" ratio "in-memory" ratio
for pipeline in 1 16; do
  for test in GET SET INCR; do
    r="${best[redis/$pipeline/$test]:-0}"
    f="${best[aof/$pipeline/$test]:-0}"
    a="${best[ap/$pipeline/$test]:-0}"
    c="${best[cp/$pipeline/$test]:-0}"
    m="${best[mem/$pipeline/$test]:-0}"
    awk -v t="$test" -v p="$pipeline" -v r="$r" -v f="$f" -v a="$a" -v c="$c" -v m="$m" 'BEGIN {
      q = (r > 0 ? 1 / r : 0); g = (f > 0 ? 1 / f : 0)
      printf "%-5s %-3s %10.0f %10.0f | %10.0f %5.2fx %5.2fx | %10.0f %5.2fx | %10.0f %5.2fx\n",
        t, p, r, f, a, a * q, a * g, c, c * q, m, m * q }'
  done
done

# Median (and range) over rounds of statemesh's rps / the base's rps in the same round.
paired() { # server base pipeline test
  local ratios=() a b
  for round in $(seq "$rounds"); do
    a="${each[$1/$3/$4/$round]:-0}"
    b="${each[$2/$3/$4/$round]:-0}"
    ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }')")
  done
  printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)
    printf "%5.2fx (%.2f-%.2f)", m, v[1], v[NR] }'
}

echo
echo "median of per-round ratios over $rounds rounds (lowest-highest round)"
printf '%-5s %-3s | %-19s %-19s | %-19s | %-19s\n' test -P "AP" "AP / AOF" "CP" "in-memory"
for pipeline in 1 16; do
  for test in GET SET INCR; do
    printf '%-5s %-3s | %-19s %-19s | %-19s | %-19s\n' "$test" "$pipeline" \
      "$(paired ap redis "$pipeline" "$test")" "$(paired ap aof "$pipeline" "$test")" \
      "$(paired cp redis "$pipeline" "$test")" "$(paired mem redis "$pipeline" "$test")"
  done
done
