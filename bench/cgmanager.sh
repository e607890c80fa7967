#!/usr/bin/env bash
# Benchmark: cgmanager GetValue / SetValue round trips, peer-to-peer and through a bus, 1 and 2
# clients, next to reading/writing the same cgroup file directly (the floor).
# Usage: sudo bench/cgmanager.sh   (ITERS=20000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-20000}

bash scripts/setup.sh >/dev/null
cargo build --release -p cgmanager -p lxr-bench
B="$PWD/target/release"

WORK=$(mktemp -d /tmp/cgm-bench.XXXXXX)
chmod 755 "$WORK"
DAEMON_PID="" BUS_PID="" CG=""
cleanup() {
    [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null || true
    [ -n "$BUS_PID" ] && kill -TERM "$BUS_PID" 2>/dev/null || true
    sleep 0.3
    [ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$WORK/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><deny own="*"/><deny send_type="method_call"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="method_return"/>
    <allow receive_type="error"/><allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>$PWD/dbus/org.linuxcontainers.cgmanager.conf</include>
</busconfig>
CONF
dbus-daemon --config-file="$WORK/bus.conf" --nofork --nopidfile 2>"$WORK/bus.log" & BUS_PID=$!
for _ in $(seq 100); do [ -S "$WORK/bus" ] && break; sleep 0.05; done
BUS="unix:path=$WORK/bus"

"$B/cgmanager" --socket "$WORK/sock" --bus "$BUS" --policy /dev/null 2>"$WORK/daemon.log" & DAEMON_PID=$!
for _ in $(seq 100); do [ -S "$WORK/sock" ] && break; sleep 0.05; done
sleep 0.3

own=$(awk -F: '{n=split($2, a, ","); for (i=1;i<=n;i++) if (a[i]=="memory") print $3}' /proc/self/cgroup)
NAME="cgm-bench-$$"
CG="/sys/fs/cgroup/memory${own%/}/$NAME"
mkdir "$CG"
VALUE=1073741824
echo $VALUE > "$CG/memory.limit_in_bytes"

printf '%-6s %-7s %7s %10s %9s %9s\n' op via clients calls/s p50_us p99_us
declare -A R
for clients in 1 2; do
    for op in get set; do
        for via in direct peer bus; do
            case $via in
                direct) target=$CG ;;
                peer) target=$WORK/sock ;;
                bus) target=$BUS ;;
            esac
            set -- $("$B/cgm-bench" "$via" "$target" "$op" "$NAME" memory.limit_in_bytes "$VALUE" "$ITERS" "$clients")
            R[$op,$via,$clients]="$1 $2 $3"
            printf '%-6s %-7s %7s %10s %9s %9s\n' "$op" "$via" "$clients" "$1" "$2" "$3"
        done
    done
done

echo
echo "targets (peer-to-peer): >= 15000 calls/s, p50 <= 60 us"
printf '%-6s %7s %12s %12s %14s\n' op clients peer_calls/s peer_p50_us peer/direct_p50
for clients in 1 2; do
    for op in get set; do
        read -r p_ops p_p50 _ <<<"${R[$op,peer,$clients]}"
        read -r _ d_p50 _ <<<"${R[$op,direct,$clients]}"
        printf '%-6s %7s %12s %12s %14s\n' "$op" "$clients" "$p_ops" "$p_p50" \
            "$(awk -v a="$p_p50" -v b="$d_p50" 'BEGIN{printf "%.1fx", a/b}')"
    done
done
echo
echo "D-Bus round trip alone (Ping), and the cost of crossing CPUs on this machine:"
printf '%-28s %10s %9s %9s\n' case calls/s p50_us p99_us
for clients in 1 2; do
    printf '%-28s %10s %9s %9s\n' "ping peer x$clients" $("$B/cgm-bench" peer "$WORK/sock" ping "$NAME" x x "$ITERS" "$clients")
done
# The daemon and one client pinned to the same CPU: no cross-CPU wakeup per call.
taskset -pc 0 "$DAEMON_PID" >/dev/null
for op in ping get set; do
    printf '%-28s %10s %9s %9s\n' "$op peer x1, one CPU" \
        $(taskset -c 0 "$B/cgm-bench" peer "$WORK/sock" "$op" "$NAME" memory.limit_in_bytes "$VALUE" "$ITERS" 1)
done
echo "daemon RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$DAEMON_PID/status)"
