# Part 1 of tests/tests/v2_lxcfs.rs: five containers with limits, each reading every file from
# four daemons side by side: ours (o: -l; oc: -l --enable-cfs) and Debian's lxcfs 5.0.3 (d: -l;
# dc: -l --enable-cfs), bracketed by the cgroup's own files read just before and after.
enter_leaf

# A host with swap (128 MiB), so that the containers' swap limits show.
dd if=/dev/zero of=/swapfile bs=1M count=128 status=none
chmod 600 /swapfile
mkswap /swapfile >/dev/null
swapon /swapfile

vda="$((0x$(stat -c %t /dev/vda))):$((0x$(stat -c %T /dev/vda)))"
section vda echo "$vda"
all="+cpuset +cpu +io +memory +pids"
# mem: 256 MiB + 64 MiB swap inside outer (384 MiB): MemTotal is the lower of the two.
cg outer memory.max=402653184 "cgroup.subtree_control=$all" >/dev/null
cg outer/mem memory.max=268435456 memory.swap.max=67108864 >/dev/null
# cpus: one of the guest's two CPUs.
cg cpus cpuset.cpus=1 >/dev/null
# quota: both CPUs, half a CPU of quota.
cg quota cpuset.cpus=0-1 "cpu.max=50000 100000" >/dev/null
# io: reads from vda throttled to 4 MB/s.
cg io "io.max=$vda rbps=4194304" >/dev/null
# bare: limits in bare, the container in bare/ct with no controller at all (bare's
# cgroup.subtree_control is empty): the kernel charges and limits it as bare.
cg bare memory.max=134217728 memory.swap.max=16777216 >/dev/null
cg bare/ct >/dev/null
# swap2: more swap (96 MiB) than memory (64 MiB).
cg swap2 memory.max=67108864 memory.swap.max=100663296 >/dev/null

start_daemon o "$OURS" -l
start_daemon oc "$OURS" -l --enable-cfs
start_daemon d "$DEBIAN" -l
start_daemon dc "$DEBIAN" -l --enable-cfs
export DAEMONS="o oc d dc"
export FILES="proc/meminfo proc/swaps proc/cpuinfo proc/stat proc/uptime proc/loadavg proc/diskstats
    proc/pressure/cpu proc/pressure/memory proc/pressure/io sys/devices/system/cpu/online"

# The container's side (sh): dump every file of every daemon, between two readings of the
# cgroup's files ($CG: the container's own, $CGF: where its controllers' files are).
DUMP='
cgfiles() {
    for f in cpu.stat cpu.pressure memory.pressure io.pressure; do
        echo "@@@ $1/$f"; cat "$CG/$f"
    done
    for f in memory.current memory.stat memory.swap.current io.stat; do
        echo "@@@ $1/$f"; cat "$CGF/$f"
    done
}
dump() {
    echo "@@@ init-start"; cut -d" " -f22 /proc/1/stat
    cgfiles cg-before
    echo "@@@ host-uptime"; cat /proc/uptime
    for f in $FILES; do
        for d in $DAEMONS; do
            echo "@@@ $d/$f"
            if [ "$f" = proc/loadavg ]; then
                sh -c "echo \"reader \$\$\"; exec cat $W/$d/$f" 2>&1 || echo "(exit status $?)"
            else
                cat "$W/$d/$f" 2>&1 || echo "(exit status $?)"
            fi
        done
    done
    echo "@@@ host-uptime-after"; cat /proc/uptime
    cgfiles cg-after
    for f in meminfo diskstats pressure/cpu pressure/memory pressure/io; do
        echo "@@@ host/$f"; cat "/proc/$f"
    done
}
'
warm='dd --version >/dev/null; date >/dev/null; cut --version >/dev/null'
run() { # NAME CG CGF SCRIPT
    CG=$UNIT/$2 CGF=$UNIT/$3 in_container "$UNIT/$2" "$DUMP $4" >"$W/out-$1" 2>&1 &
    containers+=($!)
}
containers=()
run mem outer/mem outer/mem 'sleep 2; dump'
run cpus cpus cpus 'sleep 2; dump'
# The first read of loadavg starts the sampling of a container (ours and lxcfs alike): read
# it, keep one task running for 11 s (two samples 5 s apart), then dump.
run quota quota quota 'sh -c "while :; do :; done" &
    for d in $DAEMONS; do cat $W/$d/proc/loadavg >/dev/null; done; sleep 11; dump; kill $!'
run io io io "$warm"'; t0=$(date +%s%N)
    dd if=/dev/vda of=/dev/null bs=64k count=64 iflag=direct status=none
    echo "@@@ dd-ms"; echo $(( ($(date +%s%N) - t0) / 1000000 )); dump'
run swap2 swap2 swap2 'for d in $DAEMONS; do for f in meminfo swaps; do
    echo "@@@ $d/proc/$f"; cat $W/$d/proc/$f; done; done'
run bare bare/ct bare "$warm"'; dd if=/dev/vda of=/dev/null bs=64k count=16 skip=1000 iflag=direct status=none; dump'
wait "${containers[@]}"

for c in mem cpus quota io swap2 bare; do
    sed "s/^@@@ /@@@ $c:/" "$W/out-$c"
done
for d in $DAEMONS; do
    section "log:$d" cat "$W/$d.log"
    section "alive:$d" kill -0 "$(cat "$W/$d.daemon")"
done
