#!/usr/bin/env bash
# Local demo, as root: three network namespaces (hosts A and B, client C) on
# one bridge, fipd on SQLite, an agent on A and on B. Creates a network, a
# pool and a floating IP on A, moves it to B, prints the event timeline with
# timings, then removes everything it created.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it creates network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "demo.sh: needs iproute2" >&2; exit 1; }
command -v python3 >/dev/null || { echo "demo.sh: needs python3 (to read JSON)" >&2; exit 1; }

echo "==> building fipd and fip-agent"
cargo build -q -p fipd -p fip-agent
BIN=$PWD/target/debug

tag=fd$$                               # keeps names unique and short (IFNAMSIZ)
NS_A=$tag-a NS_B=$tag-b NS_C=$tag-c NS_BR=$tag-br MGMT=$tag-m
TMP=$(mktemp -d /tmp/fipd-demo.XXXXXX)
PIDS=()

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    for ns in "$NS_A" "$NS_B" "$NS_C" "$NS_BR"; do ip netns del "$ns" 2>/dev/null; done
    ip link del "$MGMT" 2>/dev/null
    rm -rf "$TMP"
    echo "==> cleaned up"
}
trap cleanup EXIT

echo "==> topology: $NS_A, $NS_B, $NS_C on a bridge in $NS_BR; management bridge $MGMT"
for ns in "$NS_A" "$NS_B" "$NS_C" "$NS_BR"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NS_BR" link add br0 type bridge
ip -n "$NS_BR" link set br0 up
# Management network in the root namespace, so agents reach fipd.
ip link add "$MGMT" type bridge
ip link set "$MGMT" up
ip addr add 2001:db8:ffff::1/64 dev "$MGMT" nodad
i=0
for h in a b c; do
    ns=$tag-$h
    i=$((i + 1))
    ip link add eth0 netns "$ns" address "02:00:00:00:00:0$i" type veth peer name "p-$h" netns "$NS_BR"
    ip -n "$NS_BR" link set dev "p-$h" master br0 up
    ip -n "$ns" link set eth0 up
    if [ "$h" != c ]; then
        ip link add "$tag-m$h" type veth peer name mgmt0 netns "$ns"
        ip link set dev "$tag-m$h" master "$MGMT" up
        ip -n "$ns" link set mgmt0 up
        ip -n "$ns" addr add "2001:db8:ffff::$h/64" dev mgmt0 nodad
    fi
done
ip -n "$NS_C" addr add 2001:db8:100::c/64 dev eth0 nodad

echo "==> starting fipd (SQLite in $TMP)"
"$BIN/fipd" serve --listen "[2001:db8:ffff::1]:0" --data-dir "$TMP/fipd" --admin-token demo \
    --lease-ttl-ms 3000 --fence-grace-ms 1000 --quarantine-ms 0 >"$TMP/fipd.out" 2>"$TMP/fipd.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$TMP/fipd.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^fipd listening on //p' "$TMP/fipd.out")
[ -n "$URL" ] || { echo "fipd did not start:"; cat "$TMP/fipd.log"; exit 1; }
echo "    $URL"

api() { # METHOD PATH [JSON]
    python3 - "$URL" "$@" <<'PY'
import json, sys, urllib.request
url, method, path = sys.argv[1], sys.argv[2], sys.argv[3]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(url + path, data=data, method=method,
                             headers={"Authorization": "Bearer demo", "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read().decode()
except urllib.error.HTTPError as e:
    sys.exit(f"{method} {path}: {e.code} {e.read().decode()}")
print(body)
PY
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# One ICMPv6 echo from C (no dependency on iputils' ping).
ping_from_c() { # ADDR
    ip netns exec "$NS_C" python3 - "$1" <<'PY'
import socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(2)
s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4649, 1) + b"fipd-demo", (sys.argv[1], 0))
deadline = time.time() + 2
while time.time() < deadline:
    data, _ = s.recvfrom(1500)
    if data[0] == 129:
        sys.exit(0)
sys.exit(1)
PY
}

echo "==> network, pool, hosts, instances, floating IP"
NET=$(api POST /v1/networks '{"name":"demo-link"}' | field "['id']")
api POST /v1/pools "{\"network_id\":\"$NET\",\"cidr\":\"2001:db8:100::/64\",\"reserved\":[\"2001:db8:100::c\"]}" >/dev/null
for h in a b; do
    api POST /v1/hosts "{\"name\":\"host-$h\"}" | field "['token']" >"$TMP/token-$h"
done
VM_A=$(api POST /v1/instances '{"name":"web-a","project_id":"demo","host":"host-a"}' | field "['id']")
VM_B=$(api POST /v1/instances '{"name":"web-b","project_id":"demo","host":"host-b"}' | field "['id']")

echo "==> starting agents on A and B"
for h in a b; do
    ip netns exec "$tag-$h" "$BIN/fip-agent" run --api-url "$URL" --token-file "$TMP/token-$h" \
        --network demo-link=eth0 2>"$TMP/agent-$h.log" &
    PIDS+=($!)
done

FIP=$(api POST /v1/floating-ips "{\"network_id\":\"$NET\",\"project_id\":\"demo\",\"instance_id\":\"$VM_A\"}")
ID=$(echo "$FIP" | field "['id']")
ADDR=$(echo "$FIP" | field "['address']")
echo "    floating IP $ADDR ($ID) on host-a"

wait_active() { # HOST
    for _ in $(seq 300); do
        f=$(api GET "/v1/floating-ips/$ID")
        if [ "$(echo "$f" | field "['status']")" = ACTIVE ] && [ "$(echo "$f" | field "['host']")" = "$1" ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "floating IP did not become ACTIVE on $1"; echo "$f"; tail -20 "$TMP"/agent-*.log; exit 1
}
wait_active host-a
ping_from_c "$ADDR" && echo "    C pings $ADDR: $(ip -n "$NS_C" -6 neigh show "$ADDR")"

echo "==> moving $ADDR to host-b"
api PATCH "/v1/floating-ips/$ID" "{\"instance_id\":\"$VM_B\"}" >/dev/null
wait_active host-b
ping_from_c "$ADDR" && echo "    C pings $ADDR: $(ip -n "$NS_C" -6 neigh show "$ADDR")"

echo "==> event timeline (ms from the move request)"
api GET "/v1/floating-ips/$ID/events" | python3 -c "$(cat <<'PY'
import json, sys
from datetime import datetime

def at(e):
    return datetime.fromisoformat(e["at"].replace("Z", "+00:00"))

items = json.load(sys.stdin)["items"]
t0 = next(at(e) for e in items if e["kind"] == "reassociated")
for e in items:
    ms = (at(e) - t0).total_seconds() * 1000
    detail = {k: v for k, v in (e.get("detail") or {}).items() if v is not None}
    extra = json.dumps(detail) if detail else ""
    print(f"{ms:+9.0f} ms  rev {e['revision']:<3} {e['kind']:<18} {e['host'] or '':<8} {extra}")
PY
)"
