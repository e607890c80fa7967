//! `boot.autostart`: the containers whose effective configuration has `boot.autostart=true`
//! are started by [`Containers::autostart`] — what `lxr autostart`, run by the user systemd
//! unit `lxr-autostart.service` at login, does. Higher `boot.autostart.priority` first (then
//! by name); after each, `boot.autostart.delay` seconds of wait.

use super::Containers;
use crate::container::schema::parse_bool;
use crate::container::State;
use crate::error::Result;

/// What became of one autostart container.
#[derive(Debug)]
pub enum Autostarted {
    /// Started now.
    Started(State),
    /// It was already running.
    AlreadyRunning,
    /// The start failed.
    Failed(crate::error::Error),
}

impl Containers {
    /// The autostart containers, in start order: (name, priority, delay in seconds).
    pub fn autostart_order(&self) -> Result<Vec<(String, i64, u64)>> {
        let mut out: Vec<(String, i64, u64)> = self
            .list()?
            .into_iter()
            .filter(|s| {
                s.config
                    .keys
                    .get("boot.autostart")
                    .and_then(|v| parse_bool(v))
                    .unwrap_or(false)
            })
            .map(|s| {
                let int = |k: &str| {
                    s.config
                        .keys
                        .get(k)
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        .unwrap_or(0)
                };
                let delay = u64::try_from(int("boot.autostart.delay")).unwrap_or(0);
                (s.name, int("boot.autostart.priority"), delay)
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Start every autostart container that is not running, in order; one that fails does not
    /// stop the others.
    pub fn autostart(&self) -> Result<Vec<(String, Autostarted)>> {
        let mut out = Vec::new();
        for (name, _, delay) in self.autostart_order()? {
            if State::load(&self.paths.state(&name))
                .ok()
                .flatten()
                .is_some()
            {
                out.push((name, Autostarted::AlreadyRunning));
                continue;
            }
            let r = match self.start(&name) {
                Ok(s) => Autostarted::Started(s),
                Err(e) => Autostarted::Failed(e),
            };
            let started = matches!(r, Autostarted::Started(_));
            out.push((name, r));
            if started && delay > 0 {
                std::thread::sleep(std::time::Duration::from_secs(delay));
            }
        }
        Ok(out)
    }
}
