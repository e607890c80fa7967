//! The SIGUSR2 switch: virtualisation on (the default) or off. Off, every file shows the
//! host's values, as lxcfs 5.0's "non-virtualization mode" does — an admin's emergency switch
//! when a rendering misbehaves (lxcfs #407), toggled without unmounting anything.
//!
//! The state must outlive the process that serves: a supervisor's restarted child, and a
//! successor started by a live upgrade, keep what the admin chose. So it lives in one byte of
//! a memfd whose fd every generation inherits ([`SWITCH_FD_ENV`]); every process holding it
//! sees a toggle at once, whichever of them received the signal. The byte is read through a
//! shared mapping of the memfd, so checking it on every rendering costs no system call (a
//! `pread` of it was one of a meminfo rendering's ~20).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// The switch's memfd, for a successor or a supervised child.
pub const SWITCH_FD_ENV: &str = "LXCFS_SWITCH_FD";

/// The byte that means "virtualisation off"; anything else (or nothing yet) means on.
const OFF: u8 = b'h';
/// The byte written when switching back on.
const ON: u8 = b'v';

/// Virtualisation on or off, shared with every process that holds the same memfd.
#[derive(Debug)]
pub struct Virtualisation {
    /// The memfd, or `None` for a process-private switch (unit tests; a host without memfd).
    shared: Option<File>,
    /// The memfd's first page, mapped shared (`None` if it could not be: then `pread`).
    byte: Option<Mapped>,
    /// The state when there is no memfd, or when reading it fails.
    local: AtomicBool,
}

/// One page of the switch's memfd mapped shared; its first byte is the state.
#[derive(Debug)]
struct Mapped(*mut libc::c_void);

// SAFETY: the page is only accessed through `AtomicU8` (see `Mapped::state`).
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

const PAGE: usize = 4096;

impl Mapped {
    /// Map the first page of `file`, grown to hold the byte first (never shrunk: a process
    /// that maps it past the end would fault).
    fn new(file: &File) -> std::io::Result<Mapped> {
        if file.metadata()?.len() < PAGE as u64 {
            file.set_len(PAGE as u64)?;
        }
        // SAFETY: a new shared mapping of our memfd, at an address the kernel picks; the file
        // is at least as long as the mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped(p))
    }

    fn state(&self) -> &AtomicU8 {
        // SAFETY: the mapping is PAGE bytes, page-aligned, lives as long as `self`, and every
        // process touches its first byte only atomically.
        unsafe { &*self.0.cast::<AtomicU8>() }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: our own mapping of PAGE bytes; no reference to it outlives `self`.
        unsafe { libc::munmap(self.0, PAGE) };
    }
}

impl Default for Virtualisation {
    fn default() -> Self {
        Virtualisation::private()
    }
}

impl Virtualisation {
    /// A switch only this process sees (on).
    pub fn private() -> Virtualisation {
        Virtualisation {
            shared: None,
            byte: None,
            local: AtomicBool::new(true),
        }
    }

    /// A new shareable switch (on). Without memfd it is private, which only loses the state
    /// across a restart.
    pub fn shared() -> Virtualisation {
        match nix::sys::memfd::memfd_create(
            c"lxcfs-virtualisation",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        ) {
            Ok(fd) => Virtualisation::over(File::from(fd)),
            Err(e) => {
                tracing::warn!("memfd_create: {e}; the SIGUSR2 state will not survive a restart");
                Virtualisation::private()
            }
        }
    }

    /// The switch a predecessor or supervisor shares with us.
    pub fn adopt(file: File) -> Virtualisation {
        let v = Virtualisation::over(file);
        v.local.store(v.is_on(), Ordering::Relaxed);
        v
    }

    fn over(file: File) -> Virtualisation {
        let byte = Mapped::new(&file)
            .map_err(|e| tracing::debug!("the SIGUSR2 switch is read with pread: {e}"))
            .ok();
        Virtualisation {
            shared: Some(file),
            byte,
            local: AtomicBool::new(true),
        }
    }

    /// True when files are virtualised (each container sees its own values).
    pub fn is_on(&self) -> bool {
        if let Some(m) = &self.byte {
            return m.state().load(Ordering::Relaxed) != OFF;
        }
        if let Some(f) = &self.shared {
            let mut b = [0u8; 1];
            if let Ok(n) = f.read_at(&mut b, 0) {
                return n == 0 || b[0] != OFF;
            }
        }
        self.local.load(Ordering::Relaxed)
    }

    /// Switch on or off.
    pub fn set(&self, on: bool) {
        self.local.store(on, Ordering::Relaxed);
        if let Some(m) = &self.byte {
            m.state()
                .store(if on { ON } else { OFF }, Ordering::Relaxed);
            return;
        }
        if let Some(f) = &self.shared {
            if let Err(e) = f.write_at(&[if on { ON } else { OFF }], 0) {
                tracing::warn!("the SIGUSR2 state is this process's only: {e}");
            }
        }
    }

    /// Flip the switch; returns the new state (true: virtualised).
    pub fn toggle(&self) -> bool {
        let on = !self.is_on();
        self.set(on);
        on
    }

    /// The memfd to pass on, if shared.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.shared.as_ref().map(AsFd::as_fd)
    }

    /// Log the new state after a SIGUSR2, in lxcfs's words (admins grep for them).
    pub fn log_toggled(on: bool) {
        if on {
            tracing::info!(
                "SIGUSR2: switched into virtualization mode: containers see their own values"
            );
        } else {
            tracing::warn!(
                "SIGUSR2: switched into non-virtualization mode: every file shows the host's values \
                 (SIGUSR2 again to switch back)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggles_and_every_holder_of_the_memfd_sees_it() {
        let a = Virtualisation::shared();
        assert!(a.is_on());
        let b = Virtualisation::adopt(a.shared.as_ref().unwrap().try_clone().unwrap());
        assert!(b.is_on());
        assert!(!a.toggle());
        assert!(!a.is_on() && !b.is_on(), "the other holder sees the switch");
        assert!(b.toggle());
        assert!(a.is_on());
        b.set(false);
        let c = Virtualisation::adopt(b.shared.as_ref().unwrap().try_clone().unwrap());
        assert!(!c.is_on(), "a successor starts in the state it inherits");
        let p = Virtualisation::private();
        assert!(!p.toggle() && p.toggle());
        assert!(p.fd().is_none());
    }

    /// A holder that could not map the memfd (pread) and one that maps it agree.
    #[test]
    fn mapped_and_read_holders_agree() {
        let a = Virtualisation::shared();
        assert!(a.byte.is_some(), "memfds can be mapped");
        let file = a.shared.as_ref().unwrap().try_clone().unwrap();
        let b = Virtualisation {
            shared: Some(file),
            byte: None,
            local: AtomicBool::new(true),
        };
        a.set(false);
        assert!(!b.is_on(), "pread sees the mapped write");
        b.set(true);
        assert!(a.is_on(), "the mapping sees the pwrite");
    }
}
