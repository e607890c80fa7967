//! A container's devices (`lxr config device add|list|remove`): proxy devices, forwarding a
//! host address to a port of the container's, and disk devices, a directory or file of the
//! user's bound in at the next start ([`crate::launch::disks`]). Applied live where the stack allows it
//! (slirp4netns, through its API socket); pasta's forwards are fixed at its start, so there a
//! change takes effect at the next start (and says so).

use super::Containers;
use crate::container::devices::{self, Devices};
use crate::container::{Config, State};
use crate::error::{Error, Result};
use crate::net::helper::Helper;
use crate::net::proxy::{self, Proxy};
use crate::net::{slirp, Backend};

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The container runs and has it now.
    Live,
    /// Saved; the container is stopped (or has no network) and gets it at its next start.
    AtNextStart,
    /// Saved; the container runs on pasta, whose forwards are fixed until it restarts.
    AtRestart,
}

impl Containers {
    fn running_backend(&self, name: &str) -> Result<Option<Backend>> {
        Ok(State::load(&self.paths.state(name))?.and_then(|s| s.net.map(|n| n.backend)))
    }

    /// Add device `dev` of type `kind` (`proxy`: `listen=…`, `connect=…`; `disk`: `source=…`,
    /// `path=…`, `readonly=…`).
    pub fn device_add(
        &self,
        name: &str,
        dev: &str,
        kind: &str,
        args: &[String],
    ) -> Result<Applied> {
        let _lock = self.config_lock(name)?;
        let file = self.config_file(name)?;
        let mut cfg = Config::load(&file)?;
        let opts = devices::options(kind, args)?;
        devices::check(dev, &opts)?;
        if cfg.devices.contains_key(dev) {
            return Err(Error::Usage(format!("{name} already has a device {dev}")));
        }
        let applied = if kind == "disk" {
            // The source must be the user's now (and is checked again at each start).
            devices::disk(dev, &opts)?.open_source()?;
            Applied::AtNextStart
        } else {
            self.proxy_add(name, &cfg, &proxy::from_args(dev, kind, args)?)?
        };
        cfg.devices.insert(dev.to_string(), opts);
        cfg.save(&file)?;
        Ok(applied)
    }

    fn proxy_add(&self, name: &str, cfg: &Config, p: &Proxy) -> Result<Applied> {
        let keys = self.expand(cfg)?.flat();
        if let Some(other) = proxy::all(&keys)
            .into_iter()
            .find(|o| o.proto == p.proto && o.listen == p.listen)
        {
            return Err(Error::Usage(format!(
                "device {} already listens on {} {}",
                other.name,
                p.proto.name(),
                p.listen
            )));
        }
        // What the stack of the next (or the current) start can forward.
        let plan = crate::net::plan(&keys)?;
        let host_loopback = matches!(
            plan,
            crate::net::Plan::Stack {
                host_loopback: true,
                ..
            }
        );
        match plan.backend() {
            Some(Backend::Slirp4netns) => slirp::check(p, host_loopback)?,
            Some(Backend::Pasta) => crate::net::pasta::check(p)?,
            None => {}
        }
        Ok(match self.running_backend(name)? {
            Some(Backend::Slirp4netns) => {
                slirp::check(p, host_loopback)?;
                p.check_free()?;
                slirp::add(&Helper::api_socket(&self.paths.state(name)), p)?;
                Applied::Live
            }
            Some(Backend::Pasta) => {
                crate::net::pasta::check(p)?;
                p.check_free()?;
                Applied::AtRestart
            }
            None => Applied::AtNextStart,
        })
    }

    /// Remove device `dev` (a live forward is removed at once on slirp4netns; a disk stays
    /// bound in a running container until it stops).
    pub fn device_remove(&self, name: &str, dev: &str) -> Result<Applied> {
        let _lock = self.config_lock(name)?;
        let file = self.config_file(name)?;
        let mut cfg = Config::load(&file)?;
        let Some(opts) = cfg.devices.remove(dev) else {
            return Err(Error::NotFound(format!("{name} has no device {dev}")));
        };
        let p = proxy::all(
            &Config {
                devices: [(dev.to_string(), opts.clone())].into(),
                ..Default::default()
            }
            .flat(),
        )
        .into_iter()
        .next();
        let applied = match (self.running_backend(name)?, &p) {
            (Some(Backend::Slirp4netns), Some(p)) => {
                slirp::remove(&Helper::api_socket(&self.paths.state(name)), p)?;
                Applied::Live
            }
            (Some(Backend::Pasta), Some(_)) => Applied::AtRestart,
            _ => Applied::AtNextStart,
        };
        cfg.save(&file)?;
        Ok(applied)
    }

    /// The container's own devices (those of its profiles: `config show --expanded`).
    pub fn devices(&self, name: &str) -> Result<Devices> {
        Ok(self.config(name)?.devices)
    }
}
