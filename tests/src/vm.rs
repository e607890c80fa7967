//! The pure cgroup v2 guest: a Debian 12 VM (systemd 252, only cgroup2 at `/sys/fs/cgroup`) on
//! a stock Debian kernel, booted fresh by `scripts/vm.sh run` for each call (TCG: ~9–14 s to
//! the script on an idle machine, ~30–40 s while the machine compiles).
//!
//! ```no_run
//! use e2e::vm::{self, Kernel};
//! let out = vm::run(Kernel::V6_1, "set -eu; stat -fc %T /sys/fs/cgroup; lxcfs --version");
//! out.assert_success();
//! assert!(out.stdout.starts_with("cgroup2fs\n"));
//! ```
//!
//! The script runs as root under bash after `multi-user.target` (`systemctl is-system-running
//! --wait` returns), in `lxr-vm-run.service`'s cgroup (`Delegate=yes`), cwd `/root`, stdin
//! `/dev/null`. Shared in: the workspace's `target/debug` (or `$LXR_VM_BIN`) read-only at
//! `/lxr/bin`, first in `PATH` (so `lxcfs`, `cgmanager`, `cgm`, `lxr` are ours; Debian's
//! lxcfs 5.0.3 is `/usr/bin/lxcfs`); the workspace read-only at `/lxr/src`; a fresh results
//! directory read-write at `/lxr/out` (`$LXR_OUT`), readable afterwards with
//! [`GuestOutput::file`]. The guest has the users `lxrtest1` and `lxrtest2` with subuid and
//! subgid ranges, Debian's `lxcfs` and `lxc` (services disabled), busybox, fuse3, uidmap. The disk
//! is a snapshot: nothing a run does is seen by the next.
//!
//! A guest that cannot be built (no apt mirror), does not boot or runs out of its time panics
//! with `vm.sh`'s reason and the console's end: a v2 test never passes without having run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The kernels the guest boots: both from Debian 12's apt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The stock Debian 12 kernel (`linux-image-amd64`, 6.1).
    V6_1,
    /// Debian 12's newer kernel (`linux-image-6.12-amd64`).
    V6_12,
}

impl Kernel {
    /// Every kernel, oldest first.
    pub const ALL: [Kernel; 2] = [Kernel::V6_1, Kernel::V6_12];

    /// The name `vm.sh --kernel` takes, also the prefix of `uname -r` (`"6.1"`).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a script in the guest did.
pub struct GuestOutput {
    /// The kernel the guest ran.
    pub kernel: Kernel,
    /// The script's exit status.
    pub code: i32,
    /// The script's standard output, as it wrote it.
    pub stdout: String,
    /// The script's standard error.
    pub stderr: String,
    /// The guest's serial console: kernel and systemd messages (and `lxr-vm-run`'s own).
    pub console: String,
    /// `uname -r` of the kernel `vm.sh` booted (from its cache, not from the guest).
    pub release: String,
    results: tempfile::TempDir,
}

impl GuestOutput {
    /// Did the script exit 0?
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Panic (with stdout, stderr and the console's end) unless the script exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "the script failed in the guest: {self}");
        self
    }

    /// A file the script wrote under `$LXR_OUT` (`/lxr/out`), on the host.
    pub fn file(&self, name: &str) -> PathBuf {
        self.results.path().join(name)
    }

    /// The `key=value` lines of the script's stdout (a later line wins).
    pub fn facts(&self) -> std::collections::BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The fact `key`; panics (with the guest's output) when the script did not print it.
    #[track_caller]
    pub fn fact(&self, key: &str) -> String {
        self.facts()
            .remove(key)
            .unwrap_or_else(|| panic!("the guest printed no {key}=: {self}"))
    }
}

/// Guest shell (bash) that sets the guest up as its admin would with this workspace's
/// daemons: cgmanager from `systemd/cgmanager.service` (`Delegate=yes`; `ExecStart` pointed at
/// `/lxr/bin/cgmanager`) with the bus policy from `dbus/` and a delegation policy giving
/// `lxrtest1` every controller at `%D/users/%u`; our lxcfs from `systemd/lxcfs.service` at
/// `/var/lib/lxcfs`; `loginctl enable-linger lxrtest1` (a user who runs containers keeps its
/// runtime directory between logins). `$D` is then lxrtest1's delegation point in
/// `/sys/fs/cgroup`, `as_user CMD` runs bash `CMD` as lxrtest1 in a login session of its own
/// (`su -`: pam_systemd puts it in `user.slice/…/session-N.scope`) with `/lxr/bin` first in
/// `PATH`. Prints `admin_setup=ok` when all of it worked, and fails the script otherwise.
pub const ADMIN_SETUP: &str = r#"
set -euo pipefail
sed 's#/usr/local/bin/cgmanager#/lxr/bin/cgmanager#' /lxr/src/systemd/cgmanager.service     >/etc/systemd/system/cgmanager.service
sed 's#/usr/local/bin/lxcfs#/lxr/bin/lxcfs#' /lxr/src/systemd/lxcfs.service     >/etc/systemd/system/lxcfs.service
cp /lxr/src/dbus/org.linuxcontainers.cgmanager.conf /usr/share/dbus-1/system.d/
systemctl reload dbus
mkdir -p /etc/cgmanager
cat >/etc/cgmanager/delegation.conf <<'POLICY'
[[delegate]]
users = ["lxrtest1"]
controllers = ["all"]
path = "%D/users/%u"
POLICY
loginctl enable-linger lxrtest1
systemctl daemon-reload
systemctl start cgmanager.service lxcfs.service
D=/sys/fs/cgroup/system.slice/cgmanager.service/users/lxrtest1
as_user() {
    su - lxrtest1 -s /bin/bash -c "export PATH=/lxr/bin:\$PATH D=$D; $1"
}
echo admin_setup=ok
set +e +o pipefail
"#;

impl fmt::Display for GuestOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kernel {} ({}), exit status {}",
            self.kernel, self.release, self.code
        )?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        writeln!(f, "--- stderr\n{}", self.stderr)?;
        write!(
            f,
            "--- console (last 60 lines)\n{}",
            tail(&self.console, 60)
        )
    }
}

impl fmt::Debug for GuestOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Run `script` (bash) as root in a fresh guest on `kernel`, with the defaults of [`Guest`].
pub fn run(kernel: Kernel, script: &str) -> GuestOutput {
    Guest::new(kernel).run(script)
}

/// A guest run with options: `Guest::new(Kernel::V6_12).timeout(..).run(script)`.
pub struct Guest {
    kernel: Kernel,
    timeout: Duration,
    bin: PathBuf,
    append: String,
    files: Vec<(PathBuf, String)>,
}

impl Guest {
    /// `kernel`, 300 s for boot and script, the binaries of `$LXR_VM_BIN` or `target/debug`.
    pub fn new(kernel: Kernel) -> Guest {
        let bin = std::env::var_os("LXR_VM_BIN").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
            PathBuf::from,
        );
        Guest {
            kernel,
            timeout: Duration::from_secs(300),
            bin,
            append: String::new(),
            files: Vec::new(),
        }
    }

    /// Kill the guest (the test fails) when boot and script take longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Guest {
        self.timeout = timeout;
        self
    }

    /// Share this directory at `/lxr/bin` instead.
    pub fn bin(mut self, dir: impl Into<PathBuf>) -> Guest {
        self.bin = dir.into();
        self
    }

    /// More kernel command-line arguments (e.g. `"cgroup_no_v1=all"`).
    pub fn append(mut self, args: &str) -> Guest {
        self.append = args.to_owned();
        self
    }

    /// Put the host's file `src` into the results directory before the boot (hard-linked, else
    /// copied): the script finds it at `/lxr/out/<name>` (e.g. the Debian 12 image, without
    /// changing the guest). The guest may write the share: give it nothing it must not change.
    pub fn file(mut self, src: impl Into<PathBuf>, name: &str) -> Guest {
        self.files.push((src.into(), name.to_owned()));
        self
    }

    /// Boot, run `script` with bash, power off. Panics (with the reason and the console's end)
    /// when the guest cannot be built or booted or runs out of time; a script that fails is
    /// an ordinary [`GuestOutput`] with its `code`.
    pub fn run(&self, script: &str) -> GuestOutput {
        crate::require_root();
        // A guest kernel that dies before userspace (TCG has crashed 6.12 while it patched
        // its own code at boot: "Oops: int3" in `kernel_init`) ran nothing of the test's:
        // booted once more, said on stderr. A panic once the guest's init ran is the test's.
        match self.boot(script) {
            Ok(out) => out,
            Err(why) if why.ends_with("(Kernel panic before init)") => {
                eprintln!(
                    "e2e::vm: the {} guest's kernel died before its init ran; booting again",
                    self.kernel
                );
                self.boot(script).unwrap_or_else(|why| panic!("{why}"))
            }
            Err(why) => panic!("{why}"),
        }
    }

    /// One boot: the script's output, or why the guest did not run it to its end (with the
    /// whole console, for [`Guest::run`] to tell a boot that died from a test that failed).
    fn boot(&self, script: &str) -> Result<GuestOutput, String> {
        let results = tempfile::Builder::new()
            .prefix("e2e-vm-")
            .tempdir()
            .expect("temp dir");
        for (src, name) in &self.files {
            // A hard link where the two are on one file system (no 300 MB copy per boot).
            let to = results.path().join(name);
            if std::fs::hard_link(src, &to).is_err() {
                std::fs::copy(src, &to)
                    .unwrap_or_else(|e| panic!("copy {} into the guest: {e}", src.display()));
            }
        }
        let vm_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/vm.sh");
        let o = Command::new("bash")
            .arg(&vm_sh)
            .arg("run")
            .args(["--kernel", self.kernel.name()])
            .args(["--timeout", &self.timeout.as_secs().to_string()])
            .arg("--bin")
            .arg(&self.bin)
            .arg("--results")
            .arg(results.path())
            .args(["--append", &self.append])
            .args(["--", "bash", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run scripts/vm.sh");
        let read = |name: &str| {
            String::from_utf8_lossy(&std::fs::read(results.path().join(name)).unwrap_or_default())
                .into_owned()
        };
        let console = read("console.log");
        let status = read("status");
        let Ok(code) = status.trim().parse::<i32>() else {
            let shown = if console.is_empty() {
                "(empty: qemu did not start the guest)".to_owned()
            } else {
                tail(&console, 60)
            };
            let boot_died =
                console.contains("Kernel panic") && !console.contains("as init process");
            return Err(format!(
                "the v2 guest ({}) did not run the script ({}):\n{}\n--- the script's stdout so far\n{}\n--- console (last 60 lines)\n{shown}{}",
                self.kernel,
                o.status,
                String::from_utf8_lossy(&o.stderr).trim_end(),
                tail(&read("stdout"), 60),
                // For `run`: whether the kernel died before userspace, whatever the tail shows.
                if boot_died { "\n(Kernel panic before init)" } else { "" },
            ));
        };
        Ok(GuestOutput {
            kernel: self.kernel,
            code,
            stdout: read("stdout"),
            stderr: read("stderr"),
            console,
            release: read("kernel-release").trim().to_owned(),
            results,
        })
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
