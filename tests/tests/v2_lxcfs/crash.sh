# Part 3 of tests/tests/v2_lxcfs.rs: 8 containers read in tight loops (lxcfs-reader, every
# other one through descriptors opened once) while lxcfs is killed with SIGKILL and upgraded
# live, 3 times each, alternating:
#   sd:  ours as systemd runs it (systemd/lxcfs.service, binary in /usr/local/bin): the
#        restart gets the connection and the journal back from the fd store; `systemctl
#        reload` is the upgrade;
#   sv:  ours under `lxcfs --supervise`: the supervisor restarts the server; SIGUSR1 to the
#        supervisor upgrades it;
#   deb: Debian's lxcfs 5.0.3 as its own lxcfs.service runs it (for the report only).
# Each reader prints `reads= fails= wrong= max_ms= first_error=`; one that does not stop
# within 30 s of being told is reported hung, with its kernel stack.
enter_leaf
READER=/lxr/bin/lxcfs-reader
N=8
ROUNDS=3

# Still running (not gone, not a zombie)?
running() {
    local s
    s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$s" != Z ]
}

# start_readers MOUNT TAG: the 8 containers, limits 100, 116, ... MiB.
start_readers() {
    local mnt=$1 tag=$2 i mib hold
    for i in $(seq 0 $((N - 1))); do
        mib=$((100 + 16 * i))
        hold=""
        [ $((i % 2)) = 1 ] && hold=--hold
        cg "$tag-r$i" "memory.max=$((mib << 20))" >/dev/null
        in_container "$UNIT/$tag-r$i" "exec $READER $mnt $((mib * 1024)) $W/stop-$tag \
            --pause-ms=10 --ready=$W/$tag-r$i.ready $hold" >"$W/$tag-r$i.out" 2>&1 &
        echo $! >"$W/$tag-r$i.pid"
    done
    for i in $(seq 0 $((N - 1))); do
        wait_for 120 "$tag: reader $i reading" test -e "$W/$tag-r$i.ready"
    done
}

# stop_readers TAG: tell them to stop; report each (or its stack if it does not stop).
stop_readers() {
    local tag=$1 i p c until=$((SECONDS + 30))
    touch "$W/stop-$tag"
    for i in $(seq 0 $((N - 1))); do
        p=$(cat "$W/$tag-r$i.pid")
        while running "$p" && [ "$SECONDS" -lt "$until" ]; do
            sleep 0.1
        done
        echo "@@@ $tag:r$i"
        if running "$p"; then
            echo "hung"
            for c in $(pgrep -P "$p"); do
                echo "pid $c state $(cut -d' ' -f3 "/proc/$c/stat") wchan $(cat "/proc/$c/wchan")"
                cat "/proc/$c/stack" 2>/dev/null || true
            done
        else
            cat "$W/$tag-r$i.out"
        fi
    done
}

# Release any reader stuck in a request nobody will answer, so that the guest can finish.
abort_fuse() {
    local c
    for c in /sys/fs/fuse/connections/*/abort; do
        [ -e "$c" ] && echo 1 >"$c" 2>/dev/null
    done
    true
}

# How many times a daemon has said it serves (one line per start and per upgrade).
served() { grep -c 'INFO serving ' "$1" 2>/dev/null || true; }
sd_log() { journalctl -q -u lxcfs -o cat >"$W/sd.log" 2>/dev/null || true; }
main_pid() { systemctl show -p MainPID --value lxcfs; }
serving_more() { # LOGFN LOG N: the log has more than N "serving" lines
    $1
    [ "$(served "$2")" -gt "$3" ]
}
new_main_pid() { # OLD: systemd runs another main process, and it is up
    local p
    p=$(main_pid)
    [ "$p" != 0 ] && [ "$p" != "$1" ] && [ "$(systemctl is-active lxcfs)" = active ]
}
# A new binary over the old one, as a package upgrade puts it there (rename over). The
# copies are made before the readers start: copying 40 MB while they run takes minutes under
# TCG.
stage() { # DEST: one copy of ours per upgrade beside DEST
    local k
    for k in $(seq "$ROUNDS"); do
        install -m 755 "$OURS" "$1.up$k"
    done
}
reinstall() { # DEST K
    mv "$1.up$2" "$1"
}
sv_log() { :; }
# On a failure: the logs so far; always: no reader left stuck for the guest's shutdown.
trap 'st=$?; if [ "$st" != 0 ]; then sd_log; section fail:sd-log cat "$W/sd.log"
    section fail:sv-log cat "$W/sv.log"; fi; abort_fuse' EXIT

# --- sd: ours under systemd
install -m 755 "$OURS" /usr/local/bin/lxcfs
stage /usr/local/bin/lxcfs
cp /lxr/src/systemd/lxcfs.service /etc/systemd/system/lxcfs.service
systemctl daemon-reload
systemctl start lxcfs
wait_for 30 "lxcfs.service serving" test -e /var/lib/lxcfs/proc/meminfo
start_readers /var/lib/lxcfs sd
for k in $(seq "$ROUNDS"); do
    sd_log
    n=$(served "$W/sd.log")
    old=$(main_pid)
    kill -9 "$old"
    wait_for 30 "sd: restart $k" new_main_pid "$old"
    wait_for 30 "sd: restart $k serving" serving_more sd_log "$W/sd.log" "$n"
    sleep 1.5
    reinstall /usr/local/bin/lxcfs "$k"
    n=$((n + 1))
    systemctl reload lxcfs
    wait_for 30 "sd: upgrade $k serving" serving_more sd_log "$W/sd.log" "$n"
    sleep 1.5
done
stop_readers sd
sd_log
section sd:log cat "$W/sd.log"
section sd:status systemctl show -p ActiveState -p NRestarts -p MainPID lxcfs
systemctl stop lxcfs
section sd:stopped sh -c '! mountpoint -q /var/lib/lxcfs && echo unmounted'

# --- sv: ours under its supervisor
mkdir -p "$W/bin" "$W/sv"
install -m 755 "$OURS" "$W/bin/lxcfs"
stage "$W/bin/lxcfs"
"$W/bin/lxcfs" --supervise -p "$W/sv.pid" "$W/sv" >"$W/sv.log" 2>&1 &
sup=$!
wait_for 30 "supervisor serving" test -e "$W/sv/proc/meminfo"
start_readers "$W/sv" sv
server() { pgrep -P "$sup" -x lxcfs; }
for k in $(seq "$ROUNDS"); do
    n=$(served "$W/sv.log")
    kill -9 "$(server)"
    wait_for 30 "sv: restart $k serving" serving_more sv_log "$W/sv.log" "$n"
    sleep 1.5
    reinstall "$W/bin/lxcfs" "$k"
    kill -USR1 "$sup"
    wait_for 30 "sv: upgrade $k serving" serving_more sv_log "$W/sv.log" "$((n + 1))"
    sleep 1.5
done
stop_readers sv
kill "$sup"
wait "$sup" || true
section sv:log cat "$W/sv.log"

# --- deb: Debian's lxcfs 5.0.3 under its own unit, the same treatment (reported, not judged)
rm /etc/systemd/system/lxcfs.service
systemctl daemon-reload
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start lxcfs
wait_for 30 "Debian's lxcfs.service serving" test -e /var/lib/lxcfs/proc/meminfo
start_readers /var/lib/lxcfs deb
for k in $(seq "$ROUNDS"); do
    old=$(main_pid)
    kill -9 "$old"
    wait_for 30 "deb: restart $k" new_main_pid "$old" || true
    sleep 1.5
    systemctl reload lxcfs || true
    sleep 1.5
done
stop_readers deb
section deb:status systemctl show -p ActiveState -p NRestarts -p MainPID lxcfs
section deb:host-reads cat /var/lib/lxcfs/proc/uptime
section deb:log journalctl -q -u lxcfs -o cat --since "$since"
abort_fuse
