//! Signals that would end lxr (a Ctrl-C, a `kill`, a closed terminal) held back while lxr has
//! something it must undo first. `copy` and `snapshot` freeze a running container for a
//! consistent copy: killed in between, lxr left it frozen for good. While [`Deferred`] is held
//! those signals wait; the copy goes on to its end (processes forked meanwhile inherit the
//! mask), the container is thawed, and the signal then ends lxr as it would have.

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};

/// The signals held back.
const HELD: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Holds [`HELD`] blocked until dropped; what arrived meanwhile is delivered then.
pub struct Deferred {
    old: Option<SigSet>,
}

impl Deferred {
    /// Block the signals (if the mask cannot be changed, nothing is held).
    pub fn hold() -> Deferred {
        let mut set = SigSet::empty();
        for s in HELD {
            set.add(s);
        }
        let mut old = SigSet::empty();
        let held = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
        Deferred {
            old: held.then_some(old),
        }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    /// A SIGTERM while held does not end the process; it does once released.
    #[test]
    fn a_signal_while_held_waits_for_the_release() {
        // SAFETY: the child only makes plain calls and _exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let held = Deferred::hold();
                let _ = nix::sys::signal::raise(Signal::SIGTERM);
                // Still here: the work to undo is done now.
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(held);
                // Not reached: the release delivers the SIGTERM.
                crate::launch::exit_forked(3)
            }
            ForkResult::Parent { child } => {
                let st = waitpid(child, None).unwrap();
                assert_eq!(st, WaitStatus::Signaled(child, Signal::SIGTERM, false));
            }
        }
    }
}
