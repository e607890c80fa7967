//! Just enough of `org.freedesktop.DBus` on each peer-to-peer connection for clients that
//! assume a bus at any address (`busctl --address`, `gdbus call --address`, sd-bus and GDBus
//! programs): they say `Hello` first and expect a unique name, and may add match rules. Each
//! connection is its own one-client "bus": `Hello` names the client `:1.<n>`, every call is
//! answered whatever its destination (no name has an owner to look up), match rules are
//! accepted and ignored (the daemon emits no signals), and nothing else of the bus API exists.

use std::sync::atomic::{AtomicU64, Ordering};

use zbus::{fdo, interface};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The facade served at `/org/freedesktop/DBus`.
#[derive(Debug, Default)]
pub struct BusShim {
    name: std::sync::Mutex<Option<String>>,
}

#[interface(name = "org.freedesktop.DBus", spawn = false)]
impl BusShim {
    /// The client's unique name (the same if it asks twice).
    async fn hello(&self) -> fdo::Result<String> {
        let mut name = self
            .name
            .lock()
            .map_err(|_| fdo::Error::Failed("poisoned".into()))?;
        Ok(name
            .get_or_insert_with(|| format!(":1.{}", NEXT.fetch_add(1, Ordering::Relaxed)))
            .clone())
    }

    /// Match rules are accepted; the daemon emits no signals.
    async fn add_match(&self, rule: &str) {
        let _ = rule;
    }

    /// See [`BusShim::add_match`].
    async fn remove_match(&self, rule: &str) {
        let _ = rule;
    }

    /// No name has an owner here: on its own socket the daemon answers whatever the
    /// destination (zbus clients then watch no owner changes, as on any peer connection).
    async fn get_name_owner(&self, name: &str) -> fdo::Result<String> {
        Err(fdo::Error::NameHasNoOwner(format!(
            "{name}: this is cgmanager's own socket, not a bus; it answers every call itself"
        )))
    }

    /// See [`BusShim::get_name_owner`].
    async fn name_has_owner(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// The "bus" id: the daemon's connection GUID is not exposed; a fixed id will do.
    async fn get_id(&self) -> String {
        "00000000000000000000000000000000".into()
    }
}
