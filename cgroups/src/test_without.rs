//! The tests' switch for kernel features: an environment variable (`LXCFS_TEST_WITHOUT`,
//! `LXR_TEST_WITHOUT`) naming newer kernel features a program must behave as if the kernel
//! lacked, so that its fallbacks run, and are tested, on a kernel that has the features. Each
//! program keeps its own variable and feature names; this is the one parser of such a list.

/// The features a list turned off, out of the ones its program knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Without(Vec<&'static str>);

impl Without {
    /// The list in the environment variable `var` (none when it is unset).
    pub fn from_env(var: &str, known: &[&'static str]) -> Without {
        match std::env::var(var) {
            Ok(list) => Without::parse(var, &list, known),
            Err(_) => Without::default(),
        }
    }

    /// A comma-separated `list` (from `var`, for the log); unknown names are logged and
    /// ignored, and what is turned off is logged once.
    pub fn parse(var: &str, list: &str, known: &[&'static str]) -> Without {
        let mut off = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match known.iter().find(|k| **k == name) {
                Some(k) => off.push(*k),
                None => tracing::warn!("{var}: unknown kernel feature {name:?}"),
            }
        }
        if !off.is_empty() {
            tracing::info!("{var}: behaving as on a kernel without {off:?} (for tests only)");
        }
        Without(off)
    }

    /// Is `feature` turned off?
    pub fn has(&self, feature: &str) -> bool {
        self.0.contains(&feature)
    }

    /// Is anything turned off?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_features_and_ignores_the_rest() {
        let w = Without::parse("V", " a , b,bogus,,", &["a", "b", "c"]);
        assert!(w.has("a") && w.has("b") && !w.has("c") && !w.has("bogus"));
        assert!(Without::parse("V", "", &["a"]).is_empty());
        assert!(Without::parse("V", "bogus", &["a"]).is_empty());
    }
}
