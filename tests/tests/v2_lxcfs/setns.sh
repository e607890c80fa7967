# Part 2 of tests/tests/v2_lxcfs.rs: a container (init sleeping in its own cgroup, pid, cgroup
# and mount namespace) that nothing has read for yet; then readers that join it with setns —
# `nsenter -t <init> -p -C -m`, the way `lxr exec` enters — from outside its cgroup read through
# ours (o) and Debian's lxcfs 5.0.3 (d): the process nsenter starts, and a child of it.
enter_leaf
all="+cpuset +cpu +io +memory +pids"
cg outer memory.max=402653184 "cgroup.subtree_control=$all" >/dev/null
cg outer/ct memory.max=100663296 memory.swap.max=33554432 cpuset.cpus=1 >/dev/null
CT=$UNIT/outer/ct
dd if=/dev/zero of=/swapfile bs=1M count=64 status=none
chmod 600 /swapfile
mkswap /swapfile >/dev/null
swapon /swapfile

start_daemon o "$OURS"
start_daemon d "$DEBIAN"

in_container "$CT" 'sleep 600 & wait' >/dev/null 2>&1 &
holder=$! # the shell running in_container: its child is unshare, whose child is the init
container_init() {
    local u
    u=$(pgrep -P "$holder") && pgrep -P "$u" >/dev/null
}
wait_for 20 "the container's init" container_init
init=$(pgrep -P "$(pgrep -P "$holder")")
section init-nspid sed -n 's/^NSpid:\s*//p' "/proc/$init/status"
sleep 1

for d in o d; do
    # The joined process itself, then a child of it (its parent is in the namespace, but not
    # the init), each bounded: a reader must never hang.
    section "$d:joined" timeout 20 nsenter -t "$init" -p -C -m -- sh -c "
        echo \"@@@ $d:pid\"; echo \$\$
        echo \"@@@ $d:self-cgroup\"; cat /proc/self/cgroup
        echo \"@@@ $d:init-start\"; cut -d' ' -f22 /proc/1/stat
        echo \"@@@ $d:host-uptime\"; cut -d' ' -f1 /proc/uptime
        for f in meminfo swaps cpuinfo stat uptime diskstats pressure/cpu; do
            echo \"@@@ $d:proc/\$f\"; cat $W/$d/proc/\$f 2>&1 || echo \"(exit status \$?)\"
        done
        echo \"@@@ $d:online\"; cat $W/$d/sys/devices/system/cpu/online 2>&1
        echo \"@@@ $d:host-uptime-after\"; cut -d' ' -f1 /proc/uptime
        echo \"@@@ $d:child/meminfo\"; sh -c 'cat $W/$d/proc/meminfo' 2>&1
    "
done
section ct:cpu.pressure cat "$CT/cpu.pressure"
for d in o d; do
    section "log:$d" cat "$W/$d.log"
    section "alive:$d" kill -0 "$(cat "$W/$d.daemon")"
done
kill "$(pgrep -P "$holder")"
