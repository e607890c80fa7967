//! The D-Bus face of the core: `org.linuxcontainers.cgmanager0_0` ([`ManagerV0`]) and
//! `org.linuxcontainers.cgmanager1` ([`DelegationV1`]) on `/org/linuxcontainers/cgmanager`.
//!
//! Each method is one call into the [`driver`], which finds the caller, runs the core off the
//! async threads and answers with the encoding its result type has ([`answer`]); `*Scm`
//! methods answer at once and finish on their side channel ([`scm`]). How the interfaces are
//! dispatched per transport, and the read-only property: [`served`].

pub mod answer;
pub mod driver;
pub mod scm;
pub mod served;

use cgmanager_dbus::API_VERSION;
use zbus::message::Header;
use zbus::{interface, Connection, OwnedFd};

use driver::Named;
pub use driver::{Ctx, Who};

use crate::errors::{Error, Kind};

/// What a method answers (named `Result` for zbus's macro, which looks for that name).
type Result<T> = driver::Reply<T>;

/// CGManager's `recursive`: 0 or 1. Checked before anything else, as CGManager did (an
/// `*Scm` call refused here answers on D-Bus, not on its side channel).
fn recursive(r: i32) -> crate::errors::Result<bool> {
    match r {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::new(
            Kind::InvalidArgument,
            format!("recursive must be 0 or 1, not {r}"),
        )),
    }
}

/// `org.linuxcontainers.cgmanager0_0`.
pub struct ManagerV0(pub Ctx);

#[interface(name = "org.linuxcontainers.cgmanager0_0", spawn = false)]
impl ManagerV0 {
    async fn ping(&self, junk: i32) -> Result<()> {
        let _ = junk;
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn get_pid_cgroup(
        &self,
        controller: String,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_pid_cgroup(c, &controller, c.pid(pid)?, false)
            })
            .await
    }

    async fn get_pid_cgroup_scm(
        &self,
        controller: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, v: Named| {
                m.get_pid_cgroup(c, &controller, v.pid, false)
            })
            .await
    }

    #[zbus(out_args("output"))]
    async fn get_pid_cgroup_abs(
        &self,
        controller: String,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_pid_cgroup(c, &controller, c.pid(pid)?, true)
            })
            .await
    }

    async fn get_pid_cgroup_abs_scm(
        &self,
        controller: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, v: Named| {
                m.get_pid_cgroup(c, &controller, v.pid, true)
            })
            .await
    }

    #[zbus(out_args("existed"))]
    async fn create(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<i32> {
        self.0
            .call(&hdr, conn, move |m, c| m.create(c, &controller, &cgroup))
            .await
    }

    async fn create_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.create(c, &controller, &cgroup)
            })
            .await
    }

    async fn chown(
        &self,
        controller: String,
        cgroup: String,
        uid: i32,
        gid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.chown(c, &controller, &cgroup, c.uid_arg(uid)?, c.gid_arg(gid)?)
            })
            .await
    }

    async fn chown_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, v: Named| {
                m.chown(c, &controller, &cgroup, v.uid, v.gid)
            })
            .await
    }

    async fn chmod(
        &self,
        controller: String,
        cgroup: String,
        file: String,
        mode: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.chmod(c, &controller, &cgroup, &file, mode)
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn chmod_scm(
        &self,
        controller: String,
        cgroup: String,
        file: String,
        mode: i32,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.chmod(c, &controller, &cgroup, &file, mode)
            })
            .await
    }

    async fn move_pid(
        &self,
        controller: String,
        cgroup: String,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.move_pid(c, &controller, &cgroup, c.pid(pid)?, false)
            })
            .await
    }

    async fn move_pid_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, v: Named| {
                m.move_pid(c, &controller, &cgroup, v.pid, false)
            })
            .await
    }

    async fn move_pid_abs(
        &self,
        controller: String,
        cgroup: String,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.move_pid(c, &controller, &cgroup, c.pid(pid)?, true)
            })
            .await
    }

    async fn move_pid_abs_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, v: Named| {
                m.move_pid(c, &controller, &cgroup, v.pid, true)
            })
            .await
    }

    #[zbus(out_args("value"))]
    async fn get_value(
        &self,
        controller: String,
        cgroup: String,
        key: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_value(c, &controller, &cgroup, &key)
            })
            .await
    }

    async fn get_value_scm(
        &self,
        controller: String,
        cgroup: String,
        key: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.get_value(c, &controller, &cgroup, &key)
            })
            .await
    }

    async fn set_value(
        &self,
        controller: String,
        cgroup: String,
        key: String,
        value: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.set_value(c, &controller, &cgroup, &key, &value)
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn set_value_scm(
        &self,
        controller: String,
        cgroup: String,
        key: String,
        value: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.set_value(c, &controller, &cgroup, &key, &value)
            })
            .await
    }

    #[zbus(out_args("existed"))]
    async fn remove(
        &self,
        controller: String,
        cgroup: String,
        recursive: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<i32> {
        let r = self::recursive(recursive)?;
        self.0
            .call(&hdr, conn, move |m, c| m.remove(c, &controller, &cgroup, r))
            .await
    }

    async fn remove_scm(
        &self,
        controller: String,
        cgroup: String,
        recursive: i32,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let r = self::recursive(recursive)?;
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.remove(c, &controller, &cgroup, r)
            })
            .await
    }

    #[zbus(out_args("output"))]
    async fn get_tasks(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_tasks(c, &controller, &cgroup, false, true)
            })
            .await
    }

    async fn get_tasks_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.get_tasks(c, &controller, &cgroup, false, true)
            })
            .await
    }

    #[zbus(out_args("output"))]
    async fn get_tasks_recursive(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_tasks(c, &controller, &cgroup, true, true)
            })
            .await
    }

    async fn get_tasks_recursive_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.get_tasks(c, &controller, &cgroup, true, true)
            })
            .await
    }

    #[zbus(out_args("output"))]
    async fn list_children(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.list_children(c, &controller, &cgroup)
            })
            .await
    }

    async fn list_children_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.list_children(c, &controller, &cgroup)
            })
            .await
    }

    async fn remove_on_empty(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.remove_on_empty(c, &controller, &cgroup)
            })
            .await
    }

    async fn remove_on_empty_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.remove_on_empty(c, &controller, &cgroup)
            })
            .await
    }

    async fn prune(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| m.prune(c, &controller, &cgroup))
            .await
    }

    async fn prune_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.prune(c, &controller, &cgroup)
            })
            .await
    }

    #[zbus(out_args("output"))]
    async fn list_controllers(&self) -> Result<Vec<String>> {
        Ok(self.0.mgr.list_controllers())
    }

    #[zbus(out_args("output"))]
    async fn list_keys(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, u32, u32, u32)>> {
        self.0
            .call(&hdr, conn, move |m, c| m.list_keys(c, &controller, &cgroup))
            .await
    }

    async fn list_keys_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .scm(&hdr, conn, sockfd, move |m, c, ()| {
                m.list_keys(c, &controller, &cgroup)
            })
            .await
    }

    #[zbus(property, name = "api_version")]
    async fn api_version(&self) -> i32 {
        API_VERSION
    }
}

/// `org.linuxcontainers.cgmanager1`.
pub struct DelegationV1(pub Ctx);

#[interface(name = "org.linuxcontainers.cgmanager1", spawn = false)]
impl DelegationV1 {
    #[zbus(out_args("delegations"))]
    async fn delegate(
        &self,
        controller: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, String)>> {
        self.0
            .call(&hdr, conn, move |m, c| m.delegate(c, &controller))
            .await
    }

    async fn enter(
        &self,
        controller: String,
        cgroup: String,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.enter(c, &controller, &cgroup, c.pid(pid)?)
            })
            .await
    }

    #[zbus(out_args("removed"))]
    async fn release(
        &self,
        controller: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<i32> {
        self.0
            .call(&hdr, conn, move |m, c| m.release(c, &controller))
            .await
    }

    /// Process ids in a cgroup (GetTasks gives thread ids, as CGManager did).
    #[zbus(out_args("pids"))]
    async fn get_procs(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_tasks(c, &controller, &cgroup, false, false)
            })
            .await
    }

    /// Process ids in a cgroup and below.
    #[zbus(out_args("pids"))]
    async fn get_procs_recursive(
        &self,
        controller: String,
        cgroup: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        self.0
            .call(&hdr, conn, move |m, c| {
                m.get_tasks(c, &controller, &cgroup, true, false)
            })
            .await
    }
}
