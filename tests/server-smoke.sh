#!/usr/bin/env bash
# The README's main job as a user runs it: the release `statemesh serve` with its embedded default
# data directory (./statemesh-data under the working directory), driven through the CLI's
# --server mode, redis-cli and a raw JSON line; stopped with SIGTERM; the data is on disk after.
# Usage: tests/server-smoke.sh PATH-TO-RELEASE-statemesh
set -euo pipefail
bin="$1"
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill -KILL "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

"$bin" serve --port 0 --resp-port 0 > listening.txt 2> server.log &
server=$!
for _ in $(seq 100); do grep -q listening listening.txt 2>/dev/null && break; sleep 0.1; done
read -r _ json resp < listening.txt
json="${json#json=}"; resp="${resp#resp=}"
echo "server up: json $json, resp $resp"

"$bin" set sessions:user.42.cart "3 items" --server "$json" >/dev/null
[ "$("$bin" get sessions:user.42.cart --server "$json")" = "3 items" ]
[ "$(redis-cli -p "${resp##*:}" GET sessions:user.42.cart)" = "3 items" ]
[ "$(redis-cli -p "${resp##*:}" SET counters:visits 41)" = "OK" ]
[ "$(redis-cli -p "${resp##*:}" INCR counters:visits)" = "42" ]
reply=$(python3 - "$json" <<'PY'
import json, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
with socket.create_connection((host, int(port))) as s:
    s.sendall(b'{"id":1,"op":"get","key":"counters:visits"}\n')
    print(s.makefile().readline().strip())
PY
)
echo "json-lines reply: $reply"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["id"]==1 and r["ok"] and r["result"]==42, r' "$reply"

kill -TERM "$server"
wait "$server"
server=""
grep -q "store flushed and closed" server.log
[ -d statemesh-data ]
# With the server gone, the directory opens directly and holds both writes.
[ "$("$bin" get counters:visits)" = "42" ]
[ "$("$bin" get sessions:user.42.cart)" = "3 items" ]
echo "server smoke test passed: default data directory, CLI, redis-cli, JSON lines, SIGTERM"
