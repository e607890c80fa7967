//! An interface as the daemon serves it: zbus's generated dispatch, except that setting a
//! read-only property (`api_version`) is refused with `PropertyReadOnly`, as CGManager answered.
//! zbus answers `UnknownProperty` for a property without a setter, and a setter would make the
//! property read-write in the introspection data, which the shipped interface XML says it is
//! not. (Refusals are logged where replies leave the daemon: [`crate::p2p::stream`].)

use zbus::message::Header;
use zbus::object_server::{DispatchResult, Interface};
use zbus::{fdo, Connection};

/// `I` as served.
pub struct Served<I> {
    inner: I,
    read_only: &'static [&'static str],
}

impl<I> Served<I> {
    /// Serve `inner`, refusing writes to `read_only` properties.
    pub fn new(inner: I, read_only: &'static [&'static str]) -> Served<I> {
        Served { inner, read_only }
    }
}

#[zbus::export::async_trait::async_trait]
impl<I: Interface> Interface for Served<I> {
    fn name() -> zbus::names::InterfaceName<'static> {
        I::name()
    }

    fn spawn_tasks_for_methods(&self) -> bool {
        self.inner.spawn_tasks_for_methods()
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
        self.inner
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
        self.inner.call(server, connection, msg, name)
    }

    fn call_mut<'call>(
        &'call mut self,
        server: &'call zbus::ObjectServer,
        connection: &'call Connection,
        msg: &'call zbus::Message,
        name: zbus::names::MemberName<'call>,
    ) -> DispatchResult<'call> {
        self.inner.call_mut(server, connection, msg, name)
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        self.inner.introspect_to_writer(writer, level)
    }
}
