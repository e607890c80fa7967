//! An image's `templates:` rendered into a new container's rootfs (trigger `create`).
//! LXD renders Pongo2; the templates distro images ship for containers (`hostname.tpl`,
//! `hosts.tpl`) only print variables, so lxr substitutes `{{ instance.name }}` (alias
//! `container.name`) and the other instance fields it knows, renders unknown variables
//! empty as Pongo2 does, and skips templates that use `{% … %}` control flow, with a
//! warning. Targets are written without following symlinks: the rootfs came from someone
//! else and is written to by a process that may also write the user's own files.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Context, Error, Result};

use super::metadata::Metadata;

/// Render `text` with `vars` (`instance.name` → `c1`, …).
pub fn render(text: &str, vars: &BTreeMap<&str, String>) -> Option<String> {
    if text.contains("{%") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Some(out);
        };
        let var = after[..end].trim();
        if let Some(v) = vars.get(var) {
            out.push_str(v);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// Apply the `create` templates of the image in `image_dir` to `rootfs`, for container `name`.
pub fn apply_create(image_dir: &Path, meta: &Metadata, rootfs: &Path, name: &str) -> Result<()> {
    let vars = BTreeMap::from([
        ("instance.name", name.to_string()),
        ("container.name", name.to_string()),
        ("instance.architecture", meta.architecture.clone()),
        ("container.architecture", meta.architecture.clone()),
        ("instance.privileged", "false".to_string()),
        ("container.privileged", "false".to_string()),
        ("instance.ephemeral", "false".to_string()),
        ("container.ephemeral", "false".to_string()),
        ("trigger", "create".to_string()),
    ]);
    for (target, t) in &meta.templates {
        if !t.when.iter().any(|w| w == "create") {
            continue;
        }
        let src = image_dir.join("templates").join(&t.template);
        let text = std::fs::read_to_string(&src).ctx(|| format!("read {}", src.display()))?;
        let Some(out) = render(&text, &vars) else {
            eprintln!(
                "lxr: warning: template {} for {target} uses control flow lxr does not render; skipped",
                t.template
            );
            continue;
        };
        write_inside(rootfs, target, out.as_bytes())?;
    }
    Ok(())
}

/// Write `data` to `target` (an absolute path in the container) below `rootfs`, refusing
/// `..` and any symlink on the way.
pub fn write_inside(rootfs: &Path, target: &str, data: &[u8]) -> Result<()> {
    let mut path = PathBuf::from(rootfs);
    let comps: Vec<Component> = Path::new(target).components().collect();
    for (i, c) in comps.iter().enumerate() {
        match c {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(part) => path.push(part),
            _ => {
                return Err(Error::Usage(format!(
                    "template target {target:?} leaves the rootfs"
                )))
            }
        }
        let last = i + 1 == comps.len();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Usage(format!(
                    "template target {target:?} goes through a symlink ({})",
                    path.display()
                )))
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(Error::Usage(format!(
                    "{} is not a directory",
                    path.display()
                )))
            }
            Ok(_) => {}
            Err(_) if !last => {
                std::fs::create_dir(&path).ctx(|| format!("mkdir {}", path.display()))?
            }
            Err(_) => {}
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .ctx(|| format!("write {}", path.display()))?;
    f.write_all(data)
        .ctx(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_render_and_unknown_ones_are_empty() {
        let vars = BTreeMap::from([("instance.name", "c1".to_string())]);
        assert_eq!(
            render("127.0.1.1 {{ instance.name }}{{nope}}\n", &vars).as_deref(),
            Some("127.0.1.1 c1\n")
        );
        assert_eq!(render("{% if x %}a{% endif %}", &vars), None);
        assert_eq!(render("open {{ end", &vars).as_deref(), Some("open {{ end"));
    }

    #[test]
    fn targets_through_symlinks_or_dotdot_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
        assert!(write_inside(&root, "/etc/hostname", b"x").is_err());
        assert!(!outside.join("hostname").exists());
        assert!(write_inside(&root, "/../x", b"x").is_err());
        std::os::unix::fs::symlink("/nowhere", root.join("link")).unwrap();
        assert!(write_inside(&root, "/link", b"x").is_err());
        write_inside(&root, "/var/lib/x", b"ok").unwrap();
        assert_eq!(std::fs::read(root.join("var/lib/x")).unwrap(), b"ok");
    }
}
