//! Client proxies for the two interfaces of `/org/linuxcontainers/cgmanager`.
//!
//! On a peer-to-peer connection the destination is ignored by the daemon, so the defaults work
//! for both transports.

use zbus::proxy;

use crate::Error;

/// `org.linuxcontainers.cgmanager0_0`: CGManager's API. The `*Scm` methods take one end of an
/// `AF_UNIX`/`SOCK_DGRAM` socketpair; the side-channel protocol and its client are in
/// [`crate::scm`] (`scm::call`, `scm::plain_or_scm`).
#[proxy(
    interface = "org.linuxcontainers.cgmanager0_0",
    default_service = "org.linuxcontainers.cgmanager",
    default_path = "/org/linuxcontainers/cgmanager"
)]
pub trait Manager {
    /// Does nothing.
    fn ping(&self, junk: i32) -> Result<(), Error>;
    /// Cgroup of `pid` relative to the caller's.
    fn get_pid_cgroup(&self, controller: &str, pid: i32) -> Result<String, Error>;
    /// Cgroup of `pid` as an absolute path.
    fn get_pid_cgroup_abs(&self, controller: &str, pid: i32) -> Result<String, Error>;
    /// Scm form of GetPidCgroup.
    fn get_pid_cgroup_scm(&self, controller: &str, sockfd: zbus::Fd<'_>) -> Result<(), Error>;
    /// Scm form of GetPidCgroupAbs.
    fn get_pid_cgroup_abs_scm(&self, controller: &str, sockfd: zbus::Fd<'_>) -> Result<(), Error>;
    /// mkdir -p; 1 if it existed, -1 if created.
    fn create(&self, controller: &str, cgroup: &str) -> Result<i32, Error>;
    /// Scm form of Create.
    fn create_scm(&self, controller: &str, cgroup: &str, sockfd: zbus::Fd<'_>)
        -> Result<(), Error>;
    /// Give a cgroup to uid:gid.
    fn chown(&self, controller: &str, cgroup: &str, uid: i32, gid: i32) -> Result<(), Error>;
    /// Scm form of Chown.
    fn chown_scm(&self, controller: &str, cgroup: &str, sockfd: zbus::Fd<'_>) -> Result<(), Error>;
    /// chmod the directory (`file` empty) or a file.
    fn chmod(&self, controller: &str, cgroup: &str, file: &str, mode: i32) -> Result<(), Error>;
    /// Scm form of Chmod.
    fn chmod_scm(
        &self,
        controller: &str,
        cgroup: &str,
        file: &str,
        mode: i32,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Move a process into a cgroup below the caller's.
    fn move_pid(&self, controller: &str, cgroup: &str, pid: i32) -> Result<(), Error>;
    /// Scm form of MovePid.
    fn move_pid_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Move a process, path from the hierarchy root.
    fn move_pid_abs(&self, controller: &str, cgroup: &str, pid: i32) -> Result<(), Error>;
    /// Scm form of MovePidAbs.
    fn move_pid_abs_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Read a cgroup file.
    fn get_value(&self, controller: &str, cgroup: &str, key: &str) -> Result<String, Error>;
    /// Scm form of GetValue.
    fn get_value_scm(
        &self,
        controller: &str,
        cgroup: &str,
        key: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Write a cgroup file.
    fn set_value(
        &self,
        controller: &str,
        cgroup: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error>;
    /// Scm form of SetValue.
    fn set_value_scm(
        &self,
        controller: &str,
        cgroup: &str,
        key: &str,
        value: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// rmdir; 1 if it existed, -1 if not.
    fn remove(&self, controller: &str, cgroup: &str, recursive: i32) -> Result<i32, Error>;
    /// Scm form of Remove.
    fn remove_scm(
        &self,
        controller: &str,
        cgroup: &str,
        recursive: i32,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Processes of the cgroup.
    fn get_tasks(&self, controller: &str, cgroup: &str) -> Result<Vec<i32>, Error>;
    /// Scm form of GetTasks.
    fn get_tasks_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Processes of the cgroup and its descendants.
    fn get_tasks_recursive(&self, controller: &str, cgroup: &str) -> Result<Vec<i32>, Error>;
    /// Scm form of GetTasksRecursive.
    fn get_tasks_recursive_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Child cgroup names.
    fn list_children(&self, controller: &str, cgroup: &str) -> Result<Vec<String>, Error>;
    /// Scm form of ListChildren.
    fn list_children_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Remove once empty.
    fn remove_on_empty(&self, controller: &str, cgroup: &str) -> Result<(), Error>;
    /// Scm form of RemoveOnEmpty.
    fn remove_on_empty_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// Remove the empty part of a subtree, mark the rest remove-on-empty.
    fn prune(&self, controller: &str, cgroup: &str) -> Result<(), Error>;
    /// Scm form of Prune.
    fn prune_scm(&self, controller: &str, cgroup: &str, sockfd: zbus::Fd<'_>) -> Result<(), Error>;
    /// One entry per hierarchy.
    fn list_controllers(&self) -> Result<Vec<String>, Error>;
    /// Files of a cgroup: (name, uid, gid, mode).
    fn list_keys(
        &self,
        controller: &str,
        cgroup: &str,
    ) -> Result<Vec<(String, u32, u32, u32)>, Error>;
    /// Scm form of ListKeys.
    fn list_keys_scm(
        &self,
        controller: &str,
        cgroup: &str,
        sockfd: zbus::Fd<'_>,
    ) -> Result<(), Error>;
    /// CGManager's API version (10).
    #[zbus(property, name = "api_version")]
    fn api_version(&self) -> zbus::Result<i32>;
}

/// `org.linuxcontainers.cgmanager1`: delegation of a subtree to an unprivileged user.
#[proxy(
    interface = "org.linuxcontainers.cgmanager1",
    default_service = "org.linuxcontainers.cgmanager",
    default_path = "/org/linuxcontainers/cgmanager"
)]
pub trait Delegation {
    /// Get (create on demand) the caller's delegated subtree: (hierarchy, absolute path).
    fn delegate(&self, controller: &str) -> Result<Vec<(String, String)>, Error>;
    /// Move one of the caller's processes into its subtree.
    fn enter(&self, controller: &str, cgroup: &str, pid: i32) -> Result<(), Error>;
    /// Remove the caller's (empty) subtree; returns how many cgroups were removed.
    fn release(&self, controller: &str) -> Result<i32, Error>;
    /// Process ids in a cgroup (GetTasks gives thread ids).
    fn get_procs(&self, controller: &str, cgroup: &str) -> Result<Vec<i32>, Error>;
    /// Process ids in a cgroup and below.
    fn get_procs_recursive(&self, controller: &str, cgroup: &str) -> Result<Vec<i32>, Error>;
}
