//! The `controller` argument: one controller (`memory`), a named hierarchy (`name=systemd`,
//! or `systemd`), `unified` for the cgroup2 hierarchy, `all`, or a comma-separated list.

use cgroups::{Hierarchy, Layout, Version};

use crate::errors::{Error, Kind, Result};

/// Longest controller argument accepted.
pub const MAX_CONTROLLER_ARG: usize = 1024;

/// What a method accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// One hierarchy (a list is fine if all its controllers are co-mounted).
    One,
    /// Any number of hierarchies, `all` included.
    Many,
}

/// The hierarchies a controller argument names, in layout order, without duplicates.
pub fn select<'a>(layout: &'a Layout, arg: &str, arity: Arity) -> Result<Vec<&'a Hierarchy>> {
    if arg.is_empty() {
        return Err(Error::new(
            Kind::InvalidArgument,
            "empty controller; name one (memory, cpu, …), a list, or all",
        ));
    }
    if arg.len() > MAX_CONTROLLER_ARG {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!(
                "controller argument is {} bytes long (limit {MAX_CONTROLLER_ARG})",
                arg.len()
            ),
        ));
    }
    let mut out: Vec<&Hierarchy> = Vec::new();
    if arg == "all" {
        if arity == Arity::One {
            return Err(Error::new(
                Kind::InvalidArgument,
                "this method takes one controller, not all",
            ));
        }
        out.extend(layout.hierarchies.iter());
        return Ok(out);
    }
    for name in arg.split(',') {
        let h = find(layout, name)?;
        if !out.iter().any(|o| o.mount_point == h.mount_point) {
            out.push(h);
        }
    }
    if arity == Arity::One && out.len() > 1 {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!(
                "controllers {arg:?} are not mounted together; this method takes one hierarchy"
            ),
        ));
    }
    Ok(out)
}

fn find<'a>(layout: &'a Layout, name: &str) -> Result<&'a Hierarchy> {
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || b == b'/') {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!("bad controller name {name:?}"),
        ));
    }
    let named = if name == "systemd" {
        "name=systemd"
    } else {
        name
    };
    let v1 = layout
        .hierarchies
        .iter()
        .find(|h| h.version == Version::V1 && h.controllers.iter().any(|c| c == named));
    v1.or_else(|| layout.hierarchy_for(named)).ok_or_else(|| {
        Error::new(
            Kind::NoSuchController,
            format!(
                "no mounted hierarchy has controller {name:?} (cgm listcontrollers shows them)"
            ),
        )
    })
}

/// How a hierarchy is named in answers: its controllers joined by commas, or `unified`.
pub fn hierarchy_name(h: &Hierarchy) -> String {
    match h.version {
        Version::V1 => h.controllers.join(","),
        Version::V2 => "unified".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn hybrid() -> Layout {
        let mi = "\
30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";
        let mut l = Layout::from_mountinfo(Path::new("mi"), mi).unwrap();
        for h in l
            .hierarchies
            .iter_mut()
            .filter(|h| h.version == Version::V2)
        {
            h.controllers = vec!["hugetlb".into()];
        }
        l
    }

    #[test]
    fn pure_v2_host() {
        let mi = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let mut l = Layout::from_mountinfo(Path::new("mi"), mi).unwrap();
        l.hierarchies[0].controllers = vec!["cpu".into(), "memory".into(), "pids".into()];
        for c in ["memory", "pids", "cpu", "cpuacct", "unified", "memory,pids"] {
            let h = select(&l, c, Arity::One).unwrap();
            assert_eq!(h[0].version, Version::V2, "{c}");
        }
        assert!(matches!(
            select(&l, "freezer", Arity::One),
            Err(e) if e.is(Kind::NoSuchController)
        ));
        assert_eq!(select(&l, "all", Arity::Many).unwrap().len(), 1);
        assert_eq!(hierarchy_name(&l.hierarchies[0]), "unified");
    }

    #[test]
    fn names_lists_and_all() {
        let l = hybrid();
        let one = |a| select(&l, a, Arity::One);
        assert_eq!(
            one("memory").unwrap()[0].mount_point,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            one("systemd").unwrap()[0].mount_point,
            Path::new("/sys/fs/cgroup/systemd")
        );
        assert_eq!(one("name=systemd").unwrap().len(), 1);
        assert_eq!(one("cpu,cpuacct").unwrap().len(), 1);
        assert_eq!(one("unified").unwrap()[0].version, Version::V2);
        assert_eq!(one("hugetlb").unwrap()[0].version, Version::V2);
        assert!(matches!(one("memory,cpu"), Err(e) if e.is(Kind::InvalidArgument)));
        assert!(matches!(one("all"), Err(e) if e.is(Kind::InvalidArgument)));
        assert!(matches!(one("nosuch"), Err(e) if e.is(Kind::NoSuchController)));
        assert!(matches!(one(""), Err(e) if e.is(Kind::InvalidArgument)));
        assert!(matches!(one("memory,"), Err(e) if e.is(Kind::InvalidArgument)));
        assert!(matches!(one("mem\nory"), Err(e) if e.is(Kind::InvalidArgument)));
        assert_eq!(select(&l, "all", Arity::Many).unwrap().len(), 4);
        assert_eq!(
            select(&l, "memory,cpu,cpuacct", Arity::Many).unwrap().len(),
            2
        );
        let names: Vec<String> = l.hierarchies.iter().map(hierarchy_name).collect();
        assert_eq!(
            names,
            vec!["name=systemd", "memory", "cpu,cpuacct", "unified"]
        );
    }
}
