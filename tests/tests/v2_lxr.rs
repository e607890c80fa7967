//! lxr on pure cgroup v2 with systemd as PID 1 (issue 18), in the guest of `scripts/vm.sh`,
//! on both Debian 12 kernels: the ordinary user `lxrtest1` launches containers through the
//! admin's cgmanager (`systemd/cgmanager.service`, `Delegate=yes`) with our lxcfs at
//! `/var/lib/lxcfs` ([`vm::ADMIN_SETUP`]) — the user's normal path, no `LXR_*` settings.
//!
//! - busybox (one boot per kernel): every limit lxr has (`limits.memory`, `limits.cpu`,
//!   `limits.cpu.allowance`, `limits.processes`; an unknown key such as `limits.memory.swap`
//!   is refused) lands in the container's cgroup files and is what the container sees through
//!   lxcfs; `exec`; `freeze` (v2 `cgroup.freeze`: a busy loop really stops) and `unfreeze`;
//!   `stop` (every process gone); `delete`, after which nothing of the container is left:
//!   no cgroup, no mount, no process, no file.
//! - the Debian 12 systemd image (`scripts/build-image.sh debian12` on the host, as plain
//!   tarballs — the guest has no `xz` or `unsquashfs` — linked into the guest's `/lxr/out`): systemd reaches `running` with no failed unit and no failed
//!   cgroup mount, its root cgroup has the controllers and is owned by the container's root,
//!   `systemd-run -p MemoryMax=64M --wait` works inside; `systemctl reboot` inside brings it
//!   back to `running`; stop, delete, nothing left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::vm::{self, Guest, GuestOutput, Kernel};

/// The container's cgroup, and what "nothing left" means, checked as root after `delete`.
const LEFT_BEHIND: &str = r#"
left() {
    local name=$1
    echo "${name}_left_cgroups=$(find "$D" -mindepth 1 -type d -path "*/$name*" | tr '\n' ' ')"
    echo "${name}_left_mounts=$(cat /proc/*/mountinfo 2>/dev/null | grep -c "/containers/$name/" )"
    echo "${name}_left_procs=$(ps -e -o uid= | awk -v b="$BASE" '$1 >= b' | wc -l)"
    echo "${name}_left_lxr=$(ps -u lxrtest1 -o comm= | grep -vc -e '^systemd$' -e '^(sd-pam)$')"
    echo "${name}_left_files=$(find /home/lxrtest1/.local/share/lxr/containers /run/user/1000/lxr \
        -mindepth 1 -name "$name*" 2>/dev/null | tr '\n' ' ')"
}
BASE=$(awk -F: '$1 == "lxrtest1" {print $2}' /etc/subuid)
"#;

/// busybox as lxrtest1, as `key=value` facts.
const BUSYBOX: &str = r#"
set -u
L=$D/lxr/c1
lxr launch busybox c2 -c limits.memory.swap=false 2>/tmp/swap.err
echo "swap_key=$? $(tr -d '\n' </tmp/swap.err)"
lxr launch busybox c1 -c limits.memory=256MiB -c limits.cpu=1 -c limits.cpu.allowance=50% \
    -c limits.processes=100
echo "launch=$?"
echo "list=$(lxr list --format csv | grep '^c1,')"
for f in memory.max cpu.max cpuset.cpus cpuset.cpus.effective pids.max cgroup.procs \
    cgroup.subtree_control; do
    echo "cg_$f=$(tr '\n' ' ' <"$L/$f" | sed 's/ $//')"
done
echo "cg_owner=$(stat -c %u "$L")"
echo "cg_limit_owner=$(stat -c %U "$L/memory.max")"
echo "in_meminfo=$(lxr exec c1 -- grep MemTotal /proc/meminfo | tr -s ' ')"
echo "in_free=$(lxr exec c1 -- free -m | awk '/^Mem:/ {print $2}')"
echo "in_nproc=$(lxr exec c1 -- nproc)"
echo "in_cpuinfo=$(lxr exec c1 -- grep -c ^processor /proc/cpuinfo)"
echo "in_online=$(lxr exec c1 -- cat /sys/devices/system/cpu/online)"
echo "in_cgroup=$(lxr exec c1 -- cat /proc/self/cgroup)"
echo "in_memory_max=$(lxr exec c1 -- cat /sys/fs/cgroup/memory.max)"
echo "in_pids_max=$(lxr exec c1 -- cat /sys/fs/cgroup/pids.max)"
echo "in_lxcfs=$(lxr exec c1 -- grep -c lxcfs /proc/self/mountinfo)"
lxr exec c1 -- sh -c 'exit 7'
echo "exec_status=$?"

# A busy counter inside; frozen, it stops.
lxr exec -T c1 -- sh -c 'i=0; while :; do i=$((i+1)); echo $i >/tmp/c; mv /tmp/c /tmp/count; done' \
    >/dev/null 2>&1 </dev/null &
sleep 2
count() { lxr exec c1 -- cat /tmp/count; }
echo "running_count=$(count)"
lxr freeze c1
echo "freeze=$? cgroup_freeze=$(cat "$L/cgroup.freeze") frozen=$(grep frozen "$L/cgroup.events")"
echo "info_frozen=$(lxr info c1 | grep Frozen)"
a=$(cat /proc/$(lxr list --format csv | grep '^c1,' | cut -d, -f3)/root/tmp/count 2>/dev/null)
sleep 1.5
b=$(cat /proc/$(lxr list --format csv | grep '^c1,' | cut -d, -f3)/root/tmp/count 2>/dev/null)
echo "frozen_counts=$a $b"
lxr unfreeze c1
echo "unfreeze=$? cgroup_freeze=$(cat "$L/cgroup.freeze")"
sleep 1
c=$(count)
echo "thawed=$([ "${c:-0}" -gt "${b:-0}" ] && echo moving || echo stuck) $b $c"

PIDS=$(cat $(find "$L" -name cgroup.procs) | tr '\n' ' ')
echo "pids_before_stop=$PIDS"
lxr stop c1
echo "stop=$?"
alive=""
for p in $PIDS; do [ -d /proc/$p ] && alive="$alive $p"; done
echo "alive_after_stop=$alive"
echo "list_stopped=$(lxr list --format csv | grep '^c1,' | cut -d, -f2)"
lxr delete c1
echo "delete=$?"
echo "list_after=$(lxr list --format csv | grep -c '^c1,')"
"#;

/// The Debian 12 image as lxrtest1.
const DEBIAN: &str = r#"
set -u
L=$D/lxr/d1
lxr image import /var/tmp/img/meta.tar /var/tmp/img/rootfs.tar --alias debian12 >/dev/null
echo "import=$? t_import=$SECONDS"
lxr launch debian12 d1 -c limits.memory=384MiB -c limits.cpu=1
echo "launch=$? t_launch=$SECONDS"
echo "state=$(lxr exec -T d1 -- systemctl is-system-running --wait)"
echo "failed_units=$(lxr exec -T d1 -- systemctl list-units --failed --plain --no-legend | tr '\n' ' ')"
echo "cgroup_mount_errors=$(lxr exec -T d1 -- journalctl -b -q --no-pager | grep -ci -e 'cgroup.*fail' -e 'fail.*cgroup' -e 'mount.*cgroup.*denied')"
echo "in_mounts=$(lxr exec -T d1 -- findmnt -no FSTYPE,OPTIONS /sys/fs/cgroup)"
echo "in_root_controllers=$(lxr exec -T d1 -- cat /sys/fs/cgroup/cgroup.controllers)"
echo "in_root_subtree=$(lxr exec -T d1 -- cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "in_root_owner=$(lxr exec -T d1 -- stat -c %u /sys/fs/cgroup)"
echo "in_pid1_cgroup=$(lxr exec -T d1 -- cat /proc/1/cgroup)"
echo "host_top_procs=$(cat "$L/cgroup.procs" | wc -l)"
echo "host_top_owner=$(stat -c %u "$L")"
echo "memmax=$(lxr exec -T d1 -- systemd-run -q -p MemoryMax=64M --wait --pipe sh -c 'cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max')"
echo "memmax_status=$?"
# reboot inside: a new init on fresh cgroups (the old top cgroup had controllers enabled).
old=$(lxr list --format csv | grep '^d1,' | cut -d, -f3)
lxr exec -T d1 -- systemctl reboot
new=$old
for i in $(seq 120); do
    new=$(lxr list --format csv | grep '^d1,' | cut -d, -f3)
    [ -n "$new" ] && [ "$new" != "$old" ] && break
    sleep 0.5
done
echo "rebooted=$([ -n "$new" ] && [ "$new" != "$old" ] && echo yes || echo "no $(tail -3 /run/user/1000/lxr/d1/monitor.log | tr '\n' ' ')") t_rebooted=$SECONDS"
echo "state_after_reboot=$(lxr exec -T d1 -- systemctl is-system-running --wait)"
echo "in_free=$(lxr exec -T d1 -- free -m | awk '/^Mem:/ {print $2}')"
echo "in_nproc=$(lxr exec -T d1 -- nproc)"
PIDS=$(cat $(find "$L" -name cgroup.procs) | tr '\n' ' ')
echo "pid_count=$(echo $PIDS | wc -w)"
lxr stop d1
echo "stop=$? t_stop=$SECONDS"
alive=""
for p in $PIDS; do [ -d /proc/$p ] && alive="$alive $p"; done
echo "alive_after_stop=$alive"
echo "halted=$(lxr info d1 | grep -ci halt)"
lxr delete d1
echo "delete=$? t_delete=$SECONDS"
lxr image delete debian12
echo "image_delete=$?"
"#;

/// Root's part before the user's for the Debian image: the image out of the 9p share in big
/// reads (`cat`'s 128 KiB reads get ~1.4-5 MB/s out of 9p under TCG, 4 MiB ones ~14 MB/s: 15 s
/// instead of minutes for the 200 MB rootfs), readable by the user.
const FETCH_IMAGE: &str = r#"
mkdir -p /var/tmp/img
for f in meta.tar rootfs.tar; do dd if=/lxr/out/$f of=/var/tmp/img/$f bs=4M status=none; done
chmod -R a+rX /var/tmp/img
echo "fetched=$? t_fetched=$SECONDS"
"#;

fn script(user: &str, name: &str) -> String {
    let prep = if name == "d1" { FETCH_IMAGE } else { "" };
    format!(
        r#"{}
{prep}
{LEFT_BEHIND}
cat >/tmp/user.sh <<'SCRIPT'
{user}
SCRIPT
chmod 644 /tmp/user.sh
as_user 'bash /tmp/user.sh'
sleep 1
left {name}
echo "journal_warnings=$(journalctl -u cgmanager -u lxcfs -p warning --no-pager -q | wc -l)"
journalctl -u cgmanager -u lxcfs --no-pager -q >$LXR_OUT/daemons.log
"#,
        vm::ADMIN_SETUP
    )
}

fn nothing_left(out: &GuestOutput, name: &str) {
    for what in ["cgroups", "files"] {
        assert_eq!(
            out.fact(&format!("{name}_left_{what}")).trim(),
            "",
            "{what} of {name} left: {out}"
        );
    }
    for what in ["mounts", "procs", "lxr"] {
        assert_eq!(
            out.fact(&format!("{name}_left_{what}")),
            "0",
            "{what} of {name} left: {out}"
        );
    }
    assert_eq!(
        out.fact("journal_warnings"),
        "0",
        "no warnings from cgmanager or lxcfs: {}\n{out}",
        std::fs::read_to_string(out.file("daemons.log")).unwrap_or_default()
    );
}

fn busybox(kernel: Kernel) {
    let t = std::time::Instant::now();
    let out = vm::run(kernel, &script(BUSYBOX, "c1"));
    eprintln!("{kernel}: busybox guest run took {:?}", t.elapsed());
    out.assert_success();
    let f = |k: &str| out.fact(k);
    assert_eq!(f("admin_setup"), "ok", "{out}");
    let swap = f("swap_key");
    assert!(
        swap.starts_with("1 ") && swap.contains("limits.memory.swap"),
        "a key lxr does not have is refused, by name: {out}"
    );
    assert_eq!(f("launch"), "0", "{out}");
    assert!(f("list").starts_with("c1,RUNNING,"), "{out}");

    // The limits, in the container's cgroup on the host...
    assert_eq!(f("cg_memory.max"), "268435456", "{out}");
    assert_eq!(f("cg_cpu.max"), "50000 100000", "{out}");
    assert_eq!(f("cg_cpuset.cpus"), "0", "{out}");
    assert_eq!(f("cg_cpuset.cpus.effective"), "0", "{out}");
    assert_eq!(f("cg_pids.max"), "100", "{out}");
    // busybox init and its children live in the container's top cgroup (it makes none).
    let init = f("list").split(',').nth(2).unwrap().to_owned();
    assert!(
        f("cg_cgroup.procs").split(' ').any(|p| p == init),
        "init {init} is in the container's cgroup: {out}"
    );
    assert_eq!(
        f("cg_limit_owner"),
        "lxrtest1",
        "limits stay the user's, not the container's: {out}"
    );
    assert_ne!(
        f("cg_owner"),
        "1000",
        "the container's root owns its cgroup: {out}"
    );
    // ...and inside, through lxcfs and the container's own cgroup2 mount.
    assert_eq!(f("in_meminfo"), "MemTotal: 262144 kB", "{out}");
    assert_eq!(f("in_free"), "256", "{out}");
    assert_eq!(f("in_nproc"), "1", "{out}");
    assert_eq!(f("in_cpuinfo"), "1", "{out}");
    assert_eq!(f("in_online"), "0", "{out}");
    assert!(f("in_cgroup").starts_with("0::/"), "{out}");
    assert_eq!(f("in_memory_max"), "268435456", "{out}");
    assert_eq!(f("in_pids_max"), "100", "{out}");
    assert_ne!(f("in_lxcfs"), "0", "lxcfs's files bound in: {out}");
    assert_eq!(
        f("exec_status"),
        "7",
        "exec passes the status through: {out}"
    );

    // freeze / unfreeze.
    assert!(!f("running_count").is_empty(), "{out}");
    assert_eq!(f("freeze"), "0 cgroup_freeze=1 frozen=frozen 1", "{out}");
    assert_eq!(f("info_frozen"), "Frozen: yes", "{out}");
    let counts: Vec<String> = f("frozen_counts").split(' ').map(str::to_owned).collect();
    assert!(
        counts.len() == 2 && !counts[0].is_empty() && counts[0] == counts[1],
        "a frozen loop does not count: {out}"
    );
    assert_eq!(f("unfreeze"), "0 cgroup_freeze=0", "{out}");
    assert!(f("thawed").starts_with("moving"), "it counts again: {out}");

    // stop, delete, nothing left.
    assert!(
        f("pids_before_stop").split(' ').count() >= 2,
        "init and the loop: {out}"
    );
    assert_eq!(f("stop"), "0", "{out}");
    assert_eq!(f("alive_after_stop").trim(), "", "{out}");
    assert_eq!(f("list_stopped"), "STOPPED", "{out}");
    assert_eq!(f("delete"), "0", "{out}");
    assert_eq!(f("list_after"), "0", "{out}");
    nothing_left(&out, "c1");
}

#[test]
fn v2_6_1_lxr_busybox_every_limit_freeze_stop_delete_leaves_nothing() {
    busybox(Kernel::V6_1);
}

#[test]
fn v2_6_12_lxr_busybox_every_limit_freeze_stop_delete_leaves_nothing() {
    busybox(Kernel::V6_12);
}

/// The image as the guest can import it: the guest has neither `xz` nor `unsquashfs` (and its
/// package list is vm.sh's build recipe, shared by every run), so the metadata is decompressed
/// and the squashfs unpacked into a plain rootfs tarball here, once per image build (cached
/// beside it in `/var/cache/lxr/images/debian12-plain`). lxr takes a split image of two plain
/// tarballs as it takes one with a squashfs.
fn debian_image_plain() -> (PathBuf, PathBuf) {
    let (meta, rootfs) = e2e::lxr::debian_image();
    let dir = Path::new("/var/cache/lxr/images/debian12-plain");
    let (tmeta, troot) = (dir.join("meta.tar"), dir.join("rootfs.tar"));
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&troot).is_some() && mtime(&troot) >= mtime(&rootfs) && tmeta.exists() {
        return (tmeta, troot);
    }
    std::fs::create_dir_all(dir).unwrap();
    let work = tempfile::tempdir_in(dir).unwrap();
    let sh = |cmd: &str| {
        let o = std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let w = work.path().display();
    sh(&format!("xz -dc {} >{w}/meta.tar", meta.display()));
    sh(&format!(
        "unsquashfs -q -n -d {w}/rootfs {} && tar --numeric-owner -C {w}/rootfs -cf {w}/rootfs.tar .",
        rootfs.display()
    ));
    // Renamed into place last (another test run may be reading the old ones).
    std::fs::rename(work.path().join("meta.tar"), &tmeta).unwrap();
    std::fs::rename(work.path().join("rootfs.tar"), &troot).unwrap();
    (tmeta, troot)
}

fn debian(kernel: Kernel) {
    let (meta, rootfs) = debian_image_plain();
    let t = std::time::Instant::now();
    let out = Guest::new(kernel)
        .timeout(Duration::from_secs(420))
        .file(&meta, "meta.tar")
        .file(&rootfs, "rootfs.tar")
        .run(&script(DEBIAN, "d1"));
    eprintln!("{kernel}: debian12 guest run took {:?}", t.elapsed());
    out.assert_success();
    let f = |k: &str| out.fact(k);
    assert_eq!(f("admin_setup"), "ok", "{out}");
    assert!(f("fetched").starts_with("0 "), "{out}");
    assert!(f("import").starts_with("0 "), "{out}");
    assert!(f("launch").starts_with("0 "), "{out}");
    assert_eq!(f("state"), "running", "systemd's verdict: {out}");
    assert_eq!(f("failed_units").trim(), "", "{out}");
    assert_eq!(f("cgroup_mount_errors"), "0", "{out}");
    assert!(
        f("in_mounts").starts_with("cgroup2 "),
        "cgroup2 at the container's /sys/fs/cgroup: {out}"
    );
    for c in ["cpuset", "cpu", "io", "memory", "pids"] {
        assert!(
            f("in_root_controllers").split(' ').any(|x| x == c),
            "{c} offered to the container's root cgroup: {out}"
        );
    }
    // What systemd 252 enables by itself (its default accounting); more as units ask.
    for c in ["memory", "pids"] {
        assert!(
            f("in_root_subtree").split(' ').any(|x| x == c),
            "{c} enabled by systemd inside: {out}"
        );
    }
    assert_eq!(
        f("in_root_owner"),
        "0",
        "owned by the container's root: {out}"
    );
    assert_eq!(f("in_pid1_cgroup"), "0::/init.scope", "{out}");
    assert_eq!(f("host_top_procs"), "0", "{out}");
    assert_eq!(
        f("memmax"),
        "67108864",
        "systemd-run -p MemoryMax=64M: {out}"
    );
    assert_eq!(f("memmax_status"), "0", "{out}");
    assert_eq!(f("rebooted").split(' ').next(), Some("yes"), "{out}");
    assert_eq!(f("state_after_reboot"), "running", "{out}");
    assert_eq!(f("in_free"), "384", "{out}");
    assert_eq!(f("in_nproc"), "1", "{out}");
    assert!(f("stop").starts_with("0 "), "{out}");
    assert_eq!(f("alive_after_stop").trim(), "", "{out}");
    assert_ne!(f("halted"), "0", "systemd halted cleanly: {out}");
    assert!(f("delete").starts_with("0 "), "{out}");
    assert_eq!(f("image_delete"), "0", "{out}");
    nothing_left(&out, "d1");
}

#[test]
fn v2_6_1_lxr_debian12_systemd_boots_and_leaves_nothing() {
    debian(Kernel::V6_1);
}

#[test]
fn v2_6_12_lxr_debian12_systemd_boots_and_leaves_nothing() {
    debian(Kernel::V6_12);
}
