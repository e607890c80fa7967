#!/usr/bin/env bash
# Benchmark: a container's network, container <-> host over loopback, for lxr's two user-mode
# stacks (slirp4netns, the default, and pasta) and a root-made veth pair between two network
# namespaces (the kernel floor), in one run. TCP throughput with iperf3 both ways (up =
# container -> host, down = host -> container, -R) and request/response latency (1-byte
# ping-pong over one TCP connection, python3), in interleaved rounds; medians; ratios to veth.
# The container side runs the host's iperf3/python3 in the container's network namespace
# (nsenter -n, as root: only the network namespace, so its traffic crosses the stack). Nothing
# leaves the machine: the server is on the host's 127.0.0.1 (lxr: network.host_loopback=true)
# or on the veth peer.
# Usage: sudo bench/net.sh   (ROUNDS=3 rounds of T=30 s transfers by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
T=${T:-30}
RR=${RR:-2000}

bash scripts/setup.sh >/dev/null
bash scripts/test-users.sh
cargo build --release -p lxr
U=lxrtest1
UID_=$(id -u $U) GID_=$(id -g $U)
W=$(mktemp -d /tmp/lxr-netbench.XXXXXX)
chmod 755 "$W"
cp target/release/lxr "$W/"
NS=lxrbench$$
SRV_PIDS=()
cleanup() {
    for c in bslirp bpasta; do as_user "$W/lxr" delete --force $c >/dev/null 2>&1 || true; done
    for p in "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip link del vb$$ 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
as_user() {
    setpriv --reuid="$UID_" --regid="$GID_" --init-groups env -i HOME="$(getent passwd $U | cut -d: -f6)" \
        PATH=/usr/bin:/bin:/usr/sbin:/sbin XDG_DATA_HOME="$W/data" LXR_CGMANAGER=/nonexistent "$@"
}
mkdir -p "$W/data"
chown -R "$UID_:$GID_" "$W/data"

# The servers: iperf3 and a 1-byte echo, on the host's loopback and on the veth peer.
cat > "$W/echo.py" <<'PY'
import socket, sys, threading
def serve(c):
    while True:
        b = c.recv(1)
        if not b: return
        c.sendall(b)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
cat > "$W/rr.py" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
n = int(sys.argv[3]); ts = []
for _ in range(100): s.sendall(b"x"); s.recv(1)
for _ in range(n):
    t = time.perf_counter(); s.sendall(b"x"); s.recv(1); ts.append(time.perf_counter() - t)
ts.sort(); print("%.1f" % (ts[len(ts) // 2] * 1e6))
PY
iperf3 -s -B 127.0.0.1 -p 15301 >/dev/null 2>&1 & SRV_PIDS+=($!)
python3 "$W/echo.py" 127.0.0.1 15302 & SRV_PIDS+=($!)

# The floor: a veth pair, one end in a new namespace (10.201.0.2), the other on the host.
ip netns add "$NS"
ip link add vb$$ type veth peer name eth0 netns "$NS"
ip addr add 10.201.0.1/24 dev vb$$; ip link set vb$$ up
ip -n "$NS" addr add 10.201.0.2/24 dev eth0; ip -n "$NS" link set eth0 up; ip -n "$NS" link set lo up
iperf3 -s -B 10.201.0.1 -p 15301 >/dev/null 2>&1 & SRV_PIDS+=($!)
python3 "$W/echo.py" 10.201.0.1 15302 & SRV_PIDS+=($!)

# The containers (the busybox image; the host's programs run in their network namespaces).
as_user "$W/lxr" launch busybox bslirp -c network.mode=slirp4netns -c network.host_loopback=true >/dev/null
as_user "$W/lxr" launch busybox bpasta -c network.mode=pasta -c network.host_loopback=true >/dev/null
pid_of() { as_user "$W/lxr" list --format csv | awk -F, -v n="$1" '$1==n {print $3}'; }
GW_PASTA=$(nsenter -t "$(pid_of bpasta)" -n ip -4 route show default | awk '{print $3; exit}')
sleep 1

run_in() { # backend -> the command prefix and the server address
    case $1 in
        veth) echo "ip netns exec $NS" 10.201.0.1 ;;
        slirp4netns) echo "nsenter -t $(pid_of bslirp) -n" 10.0.2.2 ;;
        pasta) echo "nsenter -t $(pid_of bpasta) -n" "$GW_PASTA" ;;
    esac
}
gbps() { # prefix server [-R] -> Gbit/s received, and the number of 1 s intervals at 0
    local out
    out=$($1 iperf3 -c "$2" -p 15301 -t "$T" -J $3 2>/dev/null || echo '{}')
    python3 -c '
import json, sys
d = json.loads(sys.stdin.read() or "{}")
e = d.get("end", {}).get("sum_received", {})
iv = [i["sum"]["bits_per_second"] for i in d.get("intervals", [])]
print("%.2f %d" % (e.get("bits_per_second", 0) / 1e9, sum(1 for b in iv if b < 1e6)))' <<<"$out"
}
declare -A UP DOWN RRT STALL
BACKENDS=(veth slirp4netns pasta)
for r in $(seq "$ROUNDS"); do
    for b in "${BACKENDS[@]}"; do
        pre=$(run_in $b | awk '{$NF=""; print}'); srv=$(run_in $b | awk '{print $NF}')
        read -r up st1 < <(gbps "$pre" "$srv" "")
        read -r down st2 < <(gbps "$pre" "$srv" -R)
        rr=$($pre python3 "$W/rr.py" "$srv" 15302 "$RR" 2>/dev/null || echo 0)
        UP[$b]+="$up "; DOWN[$b]+="$down "; RRT[$b]+="$rr "; STALL[$b]+="$((st1 + st2)) "
        echo "round $r $b: up $up Gbit/s, down $down Gbit/s, rr ${rr} us, stalled seconds $((st1 + st2))" >&2
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sum() { tr ' ' '\n' | awk '{s+=$1} END {print s+0}'; }
vu=$(echo "${UP[veth]}" | median); vd=$(echo "${DOWN[veth]}" | median)
echo
echo "$(uname -r), $(nproc) CPUs, $ROUNDS rounds of ${T} s, RR = $RR round trips (median)"
echo
echo "| stack | up Gbit/s | down Gbit/s | up / veth | down / veth | RR µs | stalled 1 s intervals |"
echo "|---|---|---|---|---|---|---|"
for b in "${BACKENDS[@]}"; do
    u=$(echo "${UP[$b]}" | median); d=$(echo "${DOWN[$b]}" | median); l=$(echo "${RRT[$b]}" | median)
    s=$(echo "${STALL[$b]}" | sum)
    printf '| %s | %.2f | %.2f | %.0f%% | %.0f%% | %.1f | %s |\n' "$b" "$u" "$d" \
        "$(echo "$u $vu" | awk '{print $2 ? 100*$1/$2 : 0}')" "$(echo "$d $vd" | awk '{print $2 ? 100*$1/$2 : 0}')" "$l" "$s"
done
