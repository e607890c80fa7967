//! `metadata.yaml` of an LXD/Incus image: the mandatory `architecture` and `creation_date`,
//! the optional `properties` (description, os, release…) and `templates`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The parts of `metadata.yaml` lxr uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Metadata {
    /// `x86_64`, `amd64`, `aarch64`, …
    pub architecture: String,
    /// Unix time the image was built.
    pub creation_date: i64,
    /// Free-form properties; `description` is shown by `image list`.
    #[serde(default)]
    pub properties: BTreeMap<String, serde_yaml_ng::Value>,
    /// Files rendered into the rootfs: target path → template.
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
}

/// One entry of `templates:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Template {
    /// Triggers: `create`, `copy`, `start`.
    #[serde(default)]
    pub when: Vec<String>,
    /// File name below the image's `templates/`.
    pub template: String,
}

impl Metadata {
    /// Parse and check the mandatory keys.
    pub fn parse(text: &str) -> Result<Metadata, String> {
        let m: Metadata = serde_yaml_ng::from_str(text)
            .map_err(|e| crate::text::line(&format!("metadata.yaml: {e}")))?;
        if m.architecture.trim().is_empty() {
            return Err("metadata.yaml: architecture is empty".into());
        }
        Ok(m)
    }

    /// A string property (`description`, `os`, …).
    pub fn property(&self, key: &str) -> Option<String> {
        match self.properties.get(key)? {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
            serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Whether the image runs on this machine (LXD's and the kernel's names both accepted).
    pub fn runs_here(&self) -> bool {
        let host = std::env::consts::ARCH;
        canonical_arch(&self.architecture) == canonical_arch(host)
    }
}

/// The kernel's name for an architecture LXD/Debian may spell differently.
fn canonical_arch(a: &str) -> &str {
    match a {
        "amd64" | "x86_64" => "x86_64",
        "arm64" | "aarch64" => "aarch64",
        "i386" | "i686" => "i686",
        "armhf" | "armv7l" => "armv7l",
        "ppc64el" | "ppc64le" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INCUS: &str = "\
architecture: x86_64
creation_date: 1700000000
properties:
  description: Debian bookworm amd64 (20231114_05:24)
  os: Debian
  release: bookworm
  serial: 20231114_05:24
templates:
  /etc/hostname:
    when:
    - create
    - copy
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    create_only: false
    template: hosts.tpl
    properties: {}
";

    #[test]
    fn an_incus_metadata_file_parses() {
        let m = Metadata::parse(INCUS).unwrap();
        assert_eq!(m.creation_date, 1_700_000_000);
        assert_eq!(m.property("os").as_deref(), Some("Debian"));
        assert_eq!(m.templates["/etc/hostname"].template, "hostname.tpl");
        assert_eq!(m.templates["/etc/hosts"].when, vec!["create", "copy"]);
        assert!(m.runs_here() == (std::env::consts::ARCH == "x86_64"));
    }

    #[test]
    fn mandatory_keys_are_required() {
        assert!(Metadata::parse("creation_date: 1\n").is_err());
        assert!(Metadata::parse("architecture: x86_64\n").is_err());
        assert!(
            Metadata::parse("architecture: amd64\ncreation_date: 5\n")
                .unwrap()
                .runs_here()
                || std::env::consts::ARCH != "x86_64"
        );
    }
}
