//! `lxr init IMAGE NAME [-c key=value]… [-p PROFILE]… [--ephemeral]` ([`Containers::create`]): create a
//! container without starting it, as `incus init`.

use crate::error::Result;
use crate::lifecycle::Containers;

/// Run.
pub fn run(c: &Containers, a: super::launch::Args) -> Result<i32> {
    c.create(&a.image, &a.name, &a.config, a.profiles(), a.ephemeral)?;
    super::say!("Created {}", a.name);
    Ok(0)
}
