//! An image's `templates:` rendered into a new container's rootfs (trigger `create`).
//! LXD renders Pongo2; the templates distro images ship for containers (`hostname.tpl`,
//! `hosts.tpl`) only print variables, so lxr substitutes `{{ instance.name }}` (alias
//! `container.name`) and the other instance fields it knows, renders unknown variables
//! empty as Pongo2 does, and skips templates that use `{% … %}` control flow, with a
//! warning. Runs as the container's root of a namespace that maps nothing of the user's, and
//! every path is resolved beneath its directory without following a symlink
//! ([`crate::beneath`]): a template's source only inside the image's `templates/` (not
//! absolute, no `..`), its target only inside the new rootfs.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use crate::beneath::Dir;
use crate::error::{Error, Result};

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

/// Largest template lxr renders.
const TEMPLATE_MAX: u64 = 1 << 20;

/// Apply the `create` templates of an image (its `templates/` directory, if it has one) to
/// `rootfs`, for container `name`.
pub fn apply_create(
    templates: Option<&Dir>,
    meta: &Metadata,
    rootfs: &Dir,
    name: &str,
) -> Result<()> {
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
        let dir = templates.ok_or_else(|| {
            Error::Usage(format!(
                "template {} for {}: the image has no templates/",
                crate::text::line(&t.template),
                crate::text::line(target)
            ))
        })?;
        let text = dir.read_text(&t.template, TEMPLATE_MAX).map_err(|e| {
            Error::Usage(format!(
                "template {:?}: {e}",
                crate::text::line(&t.template)
            ))
        })?;
        let Some(out) = render(&text, &vars) else {
            eprintln!(
                "lxr: warning: template {} for {} uses control flow lxr does not render; skipped",
                crate::text::line(&t.template),
                crate::text::line(target)
            );
            continue;
        };
        write_inside(rootfs, target, out.as_bytes())?;
    }
    Ok(())
}

/// Write `data` to `target` (an absolute path in the container) below `rootfs`, making its
/// directories; refusing `..` and any symlink on the way.
pub fn write_inside(rootfs: &Dir, target: &str, data: &[u8]) -> Result<()> {
    let rel = Path::new(target.trim_start_matches('/'));
    let bad = || {
        Error::Usage(format!(
            "template target {:?} leaves the rootfs",
            crate::text::line(target)
        ))
    };
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad());
    }
    let name = rel.file_name().ok_or_else(bad)?;
    let dir = match rel.parent() {
        Some(p) if p.components().next().is_some() => rootfs.mkdir_all(p, 0o755)?,
        _ => rootfs.open_dir(".")?,
    };
    dir.write(name, data, 0o644)
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
        let r = Dir::open(&root).unwrap();
        assert!(write_inside(&r, "/etc/hostname", b"x").is_err());
        assert!(!outside.join("hostname").exists());
        assert!(write_inside(&r, "/../x", b"x").is_err());
        std::os::unix::fs::symlink("/nowhere", root.join("link")).unwrap();
        assert!(write_inside(&r, "/link", b"x").is_err());
        write_inside(&r, "/var/lib/x", b"ok").unwrap();
        assert_eq!(std::fs::read(root.join("var/lib/x")).unwrap(), b"ok");
        write_inside(&r, "/top", b"t").unwrap();
        assert_eq!(std::fs::read(root.join("top")).unwrap(), b"t");
    }

    #[test]
    fn template_sources_stay_inside_templates() {
        let d = tempfile::tempdir().unwrap();
        let (root, tpl) = (d.path().join("rootfs"), d.path().join("templates"));
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&tpl).unwrap();
        std::fs::write(d.path().join("secret"), "key").unwrap();
        std::os::unix::fs::symlink("../secret", tpl.join("link.tpl")).unwrap();
        let meta = |src: &str| {
            Metadata::parse(&format!(
                "architecture: x86_64\ncreation_date: 1\ntemplates:\n  /etc/x:\n    when: [create]\n    template: {src}\n"
            ))
            .unwrap()
        };
        let (r, t) = (Dir::open(&root).unwrap(), Dir::open(&tpl).unwrap());
        for src in ["../secret", "/etc/passwd", "link.tpl"] {
            assert!(
                apply_create(Some(&t), &meta(src), &r, "c1").is_err(),
                "{src}"
            );
        }
        assert!(!root.join("etc/x").exists());
    }
}
