//! `/proc/cpuinfo`: the host's processor blocks for the visible CPUs only, renumbered
//! `0..n` (as lxcfs does; other fields such as `siblings` or `apicid` are the host's).
//!
//! The host's text is remembered ([`HostText`]): generating it is most of a rendering's cost
//! (~10 µs of kernel time for two CPUs, every flag `seq_printf`ed), and it only changes when a
//! CPU goes on- or offline, a late microcode load, or — on hosts whose `cpu MHz` moves (x86
//! with APERF/MPERF, any host with a cpufreq driver) — all the time. So it is remembered only
//! on hosts whose frequency line is fixed, keyed by the online mask and cpu0's microcode
//! revision, both re-read (one `pread` each) on every rendering. The memory holds the host's
//! text, never a container's rendering.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{cpus, host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

/// The host's `/proc/cpuinfo` as last read, with what it was read under.
#[derive(Debug, Default)]
pub struct HostText {
    memo: Mutex<Option<Memo>>,
}

#[derive(Debug)]
struct Memo {
    /// The online mask and microcode revision the text was read under.
    key: String,
    /// Whether cpu0 has a microcode revision file (part of the key).
    microcode: bool,
    text: Arc<str>,
}

fn microcode_path(ctx: &Ctx) -> std::path::PathBuf {
    ctx.opts.sys_cpu_root.join("cpu0/microcode/version")
}

/// What the host's text depends on besides the frequency: the online CPUs, and cpu0's
/// microcode revision when there is one.
fn key(ctx: &Ctx, microcode: bool) -> FsResult<String> {
    let mut k = host::read(ctx, VFile::CpuOnline)?;
    if microcode {
        k.push('/');
        k.push_str(&host::read_path(&microcode_path(ctx))?);
    }
    Ok(k)
}

/// Whether the `cpu MHz` lines of `text` can change on their own: x86 samples APERF/MPERF
/// (flag `aperfmperf`) or asks cpufreq (a `cpufreq/policy*` directory); other architectures
/// print fixed boot-time values, or nothing, unless a cpufreq driver is loaded.
fn frequency_moves(ctx: &Ctx, text: &str) -> bool {
    let aperfmperf = text
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_ascii_whitespace().any(|w| w == "aperfmperf"));
    let cpufreq = std::fs::read_dir(ctx.opts.sys_cpu_root.join("cpufreq")).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("policy"))
    });
    aperfmperf || cpufreq
}

/// The host's `/proc/cpuinfo`: remembered while nothing it depends on changed, read afresh
/// otherwise (and always when `--proc-root` is not `/proc`: test fixtures).
fn host_text(ctx: &Ctx) -> FsResult<Arc<str>> {
    if ctx.opts.proc_root != Path::new("/proc") {
        return Ok(Arc::from(host::read(ctx, VFile::Cpuinfo)?));
    }
    let memo = &ctx.cpuinfo.memo;
    let microcode = match memo
        .lock()
        .ok()
        .and_then(|m| m.as_ref().map(|m| m.microcode))
    {
        Some(m) => m,
        None => microcode_path(ctx).exists(),
    };
    let before = key(ctx, microcode)?;
    if let Ok(m) = memo.lock() {
        if let Some(m) = m.as_ref().filter(|m| m.key == before) {
            return Ok(m.text.clone());
        }
    }
    let text: Arc<str> = Arc::from(host::read(ctx, VFile::Cpuinfo)?);
    // Remembered only if nothing changed while it was read.
    if !frequency_moves(ctx, &text) && key(ctx, microcode)? == before {
        if let Ok(mut m) = memo.lock() {
            *m = Some(Memo {
                key: before,
                microcode,
                text: text.clone(),
            });
        }
    }
    Ok(text)
}

/// Render `/proc/cpuinfo`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let host = host_text(ctx)?;
    let Some(vis) = cpus::visible(ctx, view)? else {
        return Ok(host.to_string());
    };
    let shown = vis.shown_set();
    let mut out = String::with_capacity(host.len());
    let mut next = 0u32;
    // Block by block (`memmem`, and each block's lines after the first copied at once: a
    // search and a push per line were most of a rendering).
    let finder = memchr::memmem::Finder::new("\n\n");
    let mut rest: &str = &host;
    while !rest.is_empty() {
        let (block, after) = match finder.find(rest.as_bytes()) {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, ""),
        };
        rest = after;
        if block.trim().is_empty() {
            continue;
        }
        let block = block.trim_start_matches('\n');
        let (first, body) = block.split_once('\n').unwrap_or((block, ""));
        let n = first
            .strip_prefix("processor")
            .and_then(|r| r.split(':').nth(1))
            .and_then(|v| v.trim().parse::<u32>().ok());
        match n {
            Some(n) if shown.contains(n) => {
                let (label, _) = first.split_once(':').unwrap_or((first, ""));
                out.push_str(label);
                out.push_str(": ");
                super::digits::push_u64(&mut out, u64::from(next), 0);
                out.push('\n');
                next += 1;
                let body = body.trim_end_matches('\n');
                if !body.is_empty() {
                    out.push_str(body);
                    out.push('\n');
                }
                out.push('\n');
            }
            Some(_) => {}
            None => {
                out.push_str(block);
                out.push_str("\n\n");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::Host;

    /// On this host: remembered (the same text) when its frequency lines cannot move, read
    /// afresh when they can; either way what `/proc/cpuinfo` says.
    #[test]
    fn the_hosts_text_is_remembered_only_while_it_cannot_change() {
        let ctx = Ctx::new(&crate::Options::default()).unwrap();
        let a = host_text(&ctx).unwrap();
        let b = host_text(&ctx).unwrap();
        let fresh = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        if frequency_moves(&ctx, &fresh) {
            assert!(
                !Arc::ptr_eq(&a, &b),
                "a moving frequency is never remembered"
            );
        } else {
            assert!(Arc::ptr_eq(&a, &b), "remembered");
            assert_eq!(&*b, fresh);
        }
        let m = ctx.cpuinfo.memo.lock().unwrap();
        if let Some(m) = m.as_ref() {
            assert!(m.key.starts_with(
                std::fs::read_to_string("/sys/devices/system/cpu/online")
                    .unwrap()
                    .as_str()
            ));
        }
    }

    #[test]
    fn aperfmperf_or_cpufreq_make_the_frequency_move() {
        let h = Host::hybrid();
        let ctx = Ctx::new(&h.opts()).unwrap();
        assert!(frequency_moves(
            &ctx,
            "processor\t: 0\nflags\t\t: fpu aperfmperf tsc\n"
        ));
        assert!(!frequency_moves(
            &ctx,
            "processor\t: 0\nflags\t\t: fpu tsc\n"
        ));
        std::fs::create_dir_all(h.opts().sys_cpu_root.join("cpufreq/policy0")).unwrap();
        assert!(frequency_moves(
            &ctx,
            "processor\t: 0\nflags\t\t: fpu tsc\n"
        ));
    }

    #[test]
    fn cpuset_filters_and_renumbers() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cg, "cpuset.cpus", "1,3\n");
        let out = h.render(super::render, "c");
        let procs: Vec<&str> = out.lines().filter(|l| l.starts_with("processor")).collect();
        assert_eq!(procs, ["processor\t: 0", "processor\t: 1"]);
        // The blocks are the host's cpu1 and cpu3.
        let apic: Vec<&str> = out.lines().filter(|l| l.starts_with("apicid")).collect();
        assert_eq!(apic, ["apicid\t\t: 1", "apicid\t\t: 3"]);
        assert!(out.ends_with("\n\n"));
    }

    #[test]
    fn cfs_quota_caps_the_count() {
        let h = Host::hybrid();
        let cs = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cs, "cpuset.cpus", "0-3\n");
        let cpu = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cpu, "cpu.cfs_quota_us", "150000\n");
        h.fx.write(&cpu, "cpu.cfs_period_us", "100000\n");
        let plain = h.render(super::render, "c");
        assert_eq!(plain.matches("processor").count(), 4);
        let cfs = h.render_with(super::render, "c", |o| o.cfs = true);
        assert_eq!(cfs.matches("processor").count(), 2, "ceil(1.5)");
    }

    #[test]
    fn empty_cpuset_inherits_from_parent() {
        let h = Host::hybrid();
        let p = h.fx.v1_cgroup("cpuset", "p");
        h.fx.write(&p, "cpuset.cpus", "2\n");
        let c = h.fx.v1_cgroup("cpuset", "p/c");
        h.fx.write(&c, "cpuset.cpus", "\n");
        assert_eq!(
            h.render(super::render, "p/c").matches("processor").count(),
            1
        );
    }
}
