//! The `*Scm` side channel end to end: every `*Scm` method answers on its socketpair what its
//! plain form answers on D-Bus, read with the contract's client (`cgmanager_dbus::scm`), whose
//! decoding follows the result's type as the daemon's encoding does. (Pids and ids from another
//! namespace, the reason the side channel exists, are in `cgm_api.rs`; hostile side channels
//! in `cgm_hostile.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cgmanager_dbus::scm::{call, Named};
use cgmanager_dbus::{connect, Error, ManagerProxy, Transport};
use e2e::cgm::{cgroup_of, owner, sleeper, test_user, CgmDaemon, Scratch};

#[test]
fn every_scm_method_answers_as_its_plain_form() {
    let d = CgmDaemon::start("", &[]);
    let mut s = Scratch::new("scm");
    let (uid, gid) = test_user("lxrtest1");
    let pid = sleeper(None, &[]);
    s.adopt(pid);
    let ipid = i32::try_from(pid).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = connect(&Transport::Peer(d.socket.display().to_string()))
            .await
            .unwrap();
        let m = ManagerProxy::new(&conn).await.unwrap();
        let (top, a, b) = (s.rel(""), s.rel("a"), s.rel("a/b"));

        // Create, as the plain form's `existed`: -1 made, 1 existed.
        let made: Result<i32, Error> = call(None, |fd| m.create_scm("memory", &b, fd)).await;
        assert_eq!(made, Ok(-1));
        let again: Result<i32, Error> = call(None, |fd| m.create_scm("memory", &b, fd)).await;
        assert_eq!(again, Ok(1));
        assert_eq!(m.create("memory", &b).await, Ok(1));

        // Values.
        let key = "memory.limit_in_bytes";
        let set: Result<(), Error> = call(None, |fd| {
            m.set_value_scm("memory", &b, key, "268435456", fd)
        })
        .await;
        assert_eq!(set, Ok(()));
        let got: Result<String, Error> =
            call(None, |fd| m.get_value_scm("memory", &b, key, fd)).await;
        assert_eq!(got, Ok("268435456".into()));
        assert_eq!(got, m.get_value("memory", &b, key).await);
        // A refusal arrives as the protocol's failure, its reason in the daemon's log.
        let missing: Result<String, Error> =
            call(None, |fd| m.get_value_scm("memory", &b, "no.such.file", fd)).await;
        assert!(matches!(missing, Err(Error::Failed(_))), "{missing:?}");

        // Lists.
        let children: Result<Vec<String>, Error> =
            call(None, |fd| m.list_children_scm("memory", &a, fd)).await;
        assert_eq!(children, Ok(vec!["b".to_string()]));
        assert_eq!(children, m.list_children("memory", &a).await);
        let none: Result<Vec<String>, Error> =
            call(None, |fd| m.list_children_scm("memory", &b, fd)).await;
        assert_eq!(none, Ok(vec![]));
        let chmod: Result<(), Error> =
            call(None, |fd| m.chmod_scm("memory", &b, key, 0o640, fd)).await;
        assert_eq!(chmod, Ok(()));
        let keys: Result<Vec<(String, u32, u32, u32)>, Error> =
            call(None, |fd| m.list_keys_scm("memory", &b, fd)).await;
        assert_eq!(keys, m.list_keys("memory", &b).await);
        let limit = keys.unwrap().into_iter().find(|k| k.0 == key).unwrap();
        assert_eq!(limit.3 & 0o7777, 0o640);

        // Ids named by the second credentials.
        let chown: Result<(), Error> = call(Some(Named::Ids { uid, gid }), |fd| {
            m.chown_scm("memory", &b, fd)
        })
        .await;
        assert_eq!(chown, Ok(()));
        assert_eq!(owner(&s.dir("memory", "a/b")), uid);

        // A process named by the second credentials.
        let moved: Result<(), Error> = call(Some(Named::Pid(ipid)), |fd| {
            m.move_pid_scm("memory", &b, fd)
        })
        .await;
        assert_eq!(moved, Ok(()));
        assert_eq!(cgroup_of(pid, "memory"), s.abs("memory", "a/b"));
        let rel: Result<String, Error> = call(Some(Named::Pid(ipid)), |fd| {
            m.get_pid_cgroup_scm("memory", fd)
        })
        .await;
        assert_eq!(rel, Ok(b.clone()));
        assert_eq!(rel, m.get_pid_cgroup("memory", ipid).await);
        let abs: Result<String, Error> = call(Some(Named::Pid(ipid)), |fd| {
            m.get_pid_cgroup_abs_scm("memory", fd)
        })
        .await;
        assert_eq!(abs, Ok(s.abs("memory", "a/b")));
        assert_eq!(abs, m.get_pid_cgroup_abs("memory", ipid).await);
        let tasks: Result<Vec<i32>, Error> =
            call(None, |fd| m.get_tasks_scm("memory", &b, fd)).await;
        assert_eq!(tasks, Ok(vec![ipid]));
        assert_eq!(tasks, m.get_tasks("memory", &b).await);
        let all: Result<Vec<i32>, Error> =
            call(None, |fd| m.get_tasks_recursive_scm("memory", &top, fd)).await;
        assert_eq!(all, m.get_tasks_recursive("memory", &top).await);
        assert_eq!(all, Ok(vec![ipid]));
        let abs_b = s.abs("memory", "a");
        let back: Result<(), Error> = call(Some(Named::Pid(ipid)), |fd| {
            m.move_pid_abs_scm("memory", &abs_b, fd)
        })
        .await;
        assert_eq!(back, Ok(()));
        assert_eq!(cgroup_of(pid, "memory"), s.abs("memory", "a"));

        // Removal: Remove's `existed` as the plain form's; Prune and RemoveOnEmpty done.
        let removed: Result<i32, Error> = call(None, |fd| m.remove_scm("memory", &b, 0, fd)).await;
        assert_eq!(removed, Ok(1));
        let gone: Result<i32, Error> = call(None, |fd| m.remove_scm("memory", &b, 0, fd)).await;
        assert_eq!(gone, Ok(-1));
        assert_eq!(m.remove("memory", &b, 0).await, Ok(-1));
        let c = s.rel("c");
        assert_eq!(m.create("memory", &c).await, Ok(-1));
        let pruned: Result<(), Error> = call(None, |fd| m.prune_scm("memory", &c, fd)).await;
        assert_eq!(pruned, Ok(()));
        assert!(!s.dir("memory", "c").exists());
        let marked: Result<(), Error> =
            call(None, |fd| m.remove_on_empty_scm("memory", &a, fd)).await;
        assert_eq!(marked, Ok(()));
    });
}
