//! An interface as the daemon serves it: zbus's generated dispatch, with two changes.
//!
//! * Calls are dispatched as the transport needs ([`Dispatch`]). On a peer-to-peer connection,
//!   zbus's way: in the connection's own task, one after the other — the connection has one
//!   client, which so has one call in progress at a time, and what it queues is bounded. On a
//!   bus, one connection carries every bus client: each call runs in a task of its own, so that
//!   a call waiting in the kernel does not hold up other senders, while one sender's calls still
//!   run in the order they arrived.
//! * Setting a read-only property (`api_version`) is refused with `PropertyReadOnly`, as
//!   CGManager answered. zbus answers `UnknownProperty` for a property without a setter, and a
//!   setter would make the property read-write in the introspection data, which the shipped
//!   interface XML says it is not.
//!
//! (Refusals are logged where replies leave the daemon: [`crate::p2p::stream`].)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use zbus::message::Header;
use zbus::object_server::{DispatchResult, Interface};
use zbus::{fdo, Connection, Message};

/// Most bus calls in progress at once; past it the bus connection reads no further calls until
/// one finishes (what a bus client can make the daemon hold is bounded).
pub const BUS_CALLS: usize = 256;

/// How calls of a connection are dispatched (module docs).
#[derive(Clone)]
pub enum Dispatch {
    /// In the connection's task, in order: a peer-to-peer connection.
    InOrder,
    /// Each in its own task, in order per sender: a bus connection.
    PerSender(Arc<Senders>),
}

/// `I` as served.
pub struct Served<I> {
    inner: Arc<I>,
    read_only: &'static [&'static str],
    dispatch: Dispatch,
}

impl<I> Served<I> {
    /// Serve `inner`, refusing writes to `read_only` properties.
    pub fn new(inner: I, read_only: &'static [&'static str], dispatch: Dispatch) -> Served<I> {
        Served {
            inner: Arc::new(inner),
            read_only,
            dispatch,
        }
    }
}

/// The bus's senders with a call in progress, and the bound on calls in progress.
pub struct Senders {
    /// Per sender, the last call queued: its number, and what ends when it is done.
    last: Mutex<HashMap<String, (u64, oneshot::Receiver<()>)>>,
    next: std::sync::atomic::AtomicU64,
    slots: Arc<Semaphore>,
}

impl Senders {
    /// No calls yet.
    pub fn new() -> Arc<Senders> {
        Arc::new(Senders {
            last: Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(BUS_CALLS)),
        })
    }

    /// Queue a call of `sender` behind its previous one. Called in the order calls arrive.
    fn queue(self: &Arc<Self>, sender: String) -> Turn {
        let (done, rx) = oneshot::channel();
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prev = match self.last.lock() {
            Ok(mut last) => last.insert(sender.clone(), (seq, rx)).map(|(_, r)| r),
            Err(_) => None,
        };
        Turn {
            senders: self.clone(),
            sender,
            seq,
            prev,
            _done: done,
        }
    }
}

/// A call's place in its sender's queue; dropping it lets the next call of that sender run.
struct Turn {
    senders: Arc<Senders>,
    sender: String,
    seq: u64,
    prev: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl Turn {
    /// Wait until the sender's previous call is done.
    async fn wait(&mut self) {
        if let Some(prev) = self.prev.take() {
            // Err: the previous call's turn was dropped, which is what we wait for.
            let _ = prev.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Ok(mut last) = self.senders.last.lock() {
            if last
                .get(&self.sender)
                .is_some_and(|(seq, _)| *seq == self.seq)
            {
                last.remove(&self.sender);
            }
        }
    }
}

/// Run one call as zbus does, in the calling task, answering an error it returns.
async fn dispatch<I: Interface>(inner: &I, conn: &Connection, msg: &Message) {
    let hdr = msg.header();
    let Some(member) = hdr.member() else {
        return;
    };
    let server = conn.object_server();
    let r = match inner.call(server, conn, msg, member.clone()) {
        DispatchResult::Async(f) => f.await,
        _ => Err(Box::new(fdo::Error::UnknownMethod(format!(
            "Unknown method '{member}'"
        ))) as zbus::BoxDBusError),
    };
    if let Err(e) = r {
        let _ = conn.reply_dbus_error(&hdr, e).await;
    }
}

impl<I: Interface> Served<I> {
    /// A bus call: queued behind its sender's previous call, then run in a task of its own
    /// once one of the [`BUS_CALLS`] slots is free.
    fn per_sender<'call>(
        &'call self,
        senders: &Arc<Senders>,
        connection: &'call Connection,
        msg: &'call Message,
    ) -> DispatchResult<'call> {
        let sender = msg
            .header()
            .sender()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let mut turn = senders.queue(sender);
        let (inner, conn, msg) = (self.inner.clone(), connection.clone(), msg.clone());
        let slots = senders.slots.clone();
        DispatchResult::Async(Box::pin(async move {
            let slot: Option<OwnedSemaphorePermit> = slots.acquire_owned().await.ok();
            tokio::spawn(async move {
                turn.wait().await;
                dispatch(&*inner, &conn, &msg).await;
                drop(turn);
                drop(slot);
            });
            Ok(())
        }))
    }
}

#[zbus::export::async_trait::async_trait]
impl<I: Interface> Interface for Served<I> {
    fn name() -> zbus::names::InterfaceName<'static> {
        I::name()
    }

    fn spawn_tasks_for_methods(&self) -> bool {
        // The dispatch is ours (module docs): zbus calls `call` in arrival order.
        false
    }

    async fn get(
        &self,
        property_name: &str,
        server: &zbus::ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &zbus::object_server::SignalEmitter<'_>,
    ) -> Option<std::result::Result<zbus::OwnedVariant, zbus::BoxDBusError>> {
        self.inner
            .get(property_name, server, connection, header, emitter)
            .await
    }

    async fn get_all(
        &self,
        server: &zbus::ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &zbus::object_server::SignalEmitter<'_>,
    ) -> fdo::Result<std::collections::HashMap<String, zbus::OwnedVariant>> {
        self.inner
            .get_all(server, connection, header, emitter)
            .await
    }

    fn set<'call>(
        &'call self,
        property_name: &'call str,
        value: &'call zbus::Variant<'_>,
        server: &'call zbus::ObjectServer,
        connection: &'call Connection,
        header: Option<&'call Header<'_>>,
        emitter: &'call zbus::object_server::SignalEmitter<'_>,
    ) -> DispatchResult<'call> {
        if self.read_only.contains(&property_name) {
            let why = format!("{property_name} is read-only");
            return DispatchResult::Async(Box::pin(async move {
                let e: zbus::BoxDBusError = Box::new(fdo::Error::PropertyReadOnly(why));
                Err(e)
            }));
        }
        self.inner
            .set(property_name, value, server, connection, header, emitter)
    }

    async fn set_mut(
        &mut self,
        property_name: &str,
        value: &zbus::Variant<'_>,
        server: &zbus::ObjectServer,
        connection: &Connection,
        header: Option<&Header<'_>>,
        emitter: &zbus::object_server::SignalEmitter<'_>,
    ) -> Option<std::result::Result<(), zbus::BoxDBusError>> {
        // The daemon's interfaces have no `&mut` properties; a shared one has none to set.
        Arc::get_mut(&mut self.inner)?
            .set_mut(property_name, value, server, connection, header, emitter)
            .await
    }

    fn call<'call>(
        &'call self,
        server: &'call zbus::ObjectServer,
        connection: &'call Connection,
        msg: &'call zbus::Message,
        name: zbus::names::MemberName<'call>,
    ) -> DispatchResult<'call> {
        match &self.dispatch {
            Dispatch::InOrder => self.inner.call(server, connection, msg, name),
            Dispatch::PerSender(senders) => self.per_sender(senders, connection, msg),
        }
    }

    fn call_mut<'call>(
        &'call mut self,
        server: &'call zbus::ObjectServer,
        connection: &'call Connection,
        msg: &'call zbus::Message,
        name: zbus::names::MemberName<'call>,
    ) -> DispatchResult<'call> {
        // As for `set_mut`: no `&mut` methods.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.call_mut(server, connection, msg, name),
            None => DispatchResult::NotFound,
        }
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        self.inner.introspect_to_writer(writer, level)
    }
}
