//! A container's devices (`lxr config device add|list|remove`): proxy devices, forwarding a
//! host address to a port of the container's. Applied live where the stack allows it
//! (slirp4netns, through its API socket); pasta's forwards are fixed at its start, so there a
//! change takes effect at the next start (and says so).

use super::Containers;
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

    /// Add proxy device `dev` (`kind` must be `proxy`; `args` are `listen=…`, `connect=…`).
    pub fn device_add(
        &self,
        name: &str,
        dev: &str,
        kind: &str,
        args: &[String],
    ) -> Result<Applied> {
        let file = self.paths.container(name).join("config.yaml");
        self.existing(name)?;
        let mut cfg = Config::load(&file)?;
        let p = proxy::from_args(dev, kind, args)?;
        if proxy::exists(&cfg.keys, dev) {
            return Err(Error::Usage(format!("{name} already has a device {dev}")));
        }
        if let Some(other) = proxy::all(&cfg.keys)
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
        let host_loopback = matches!(
            crate::net::plan(&cfg.keys)?,
            crate::net::Plan::Stack {
                host_loopback: true,
                ..
            }
        );
        match crate::net::plan(&cfg.keys)?.backend() {
            Some(Backend::Slirp4netns) => slirp::check(&p, host_loopback)?,
            Some(Backend::Pasta) => crate::net::pasta::check(&p)?,
            None => {}
        }
        let applied = match self.running_backend(name)? {
            Some(Backend::Slirp4netns) => {
                slirp::check(&p, host_loopback)?;
                p.check_free()?;
                slirp::add(&Helper::api_socket(&self.paths.state(name)), &p)?;
                Applied::Live
            }
            Some(Backend::Pasta) => {
                crate::net::pasta::check(&p)?;
                p.check_free()?;
                Applied::AtRestart
            }
            None => Applied::AtNextStart,
        };
        cfg.keys.extend(p.keys());
        cfg.save(&file)?;
        Ok(applied)
    }

    /// Remove device `dev` (a live forward is removed at once on slirp4netns).
    pub fn device_remove(&self, name: &str, dev: &str) -> Result<Applied> {
        let file = self.paths.container(name).join("config.yaml");
        self.existing(name)?;
        let mut cfg = Config::load(&file)?;
        let p = proxy::all(&cfg.keys).into_iter().find(|p| p.name == dev);
        if !proxy::remove(&mut cfg.keys, dev) {
            return Err(Error::NotFound(format!("{name} has no device {dev}")));
        }
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

    /// The proxy devices.
    pub fn devices(&self, name: &str) -> Result<Vec<Proxy>> {
        Ok(proxy::all(&self.config(name)?.keys))
    }
}
