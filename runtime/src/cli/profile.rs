//! `lxr profile create|list|show|edit|copy|rename|delete|assign|add|remove|set|get|unset|device` (Incus's verbs):
//! named sets of keys and devices applied under a container's own, in order. The `default`
//! profile always exists and is given to new containers unless `launch -p`/`--no-profiles`.

use super::device::DeviceOp;
use crate::error::Result;
use crate::lifecycle::{key_value_pairs, Containers};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, clap::Subcommand)]
enum Op {
    /// Make an empty profile.
    Create { name: String },
    /// List the profiles and the containers using each.
    #[command(alias = "ls")]
    List,
    /// Print a profile (YAML: description, config, devices).
    Show { name: String },
    /// Edit a profile in $VISUAL/$EDITOR (or read it from standard input when that is not a
    /// terminal: `lxr profile edit web < web.yaml`); checked before it is saved.
    Edit { name: String },
    /// Copy a profile to a new name.
    #[command(alias = "cp")]
    Copy { from: String, to: String },
    /// Rename a profile (not `default`); its containers follow.
    #[command(alias = "mv")]
    Rename { from: String, to: String },
    /// Delete a profile (not `default`, not while containers use it).
    #[command(alias = "rm")]
    Delete { name: String },
    /// Give a container these profiles, comma-separated, in order (`""` removes them all).
    Assign { container: String, profiles: String },
    /// Add a profile to a container's list (applied last, under its own keys).
    Add { container: String, profile: String },
    /// Remove a profile from a container's list.
    Remove { container: String, profile: String },
    /// Set keys: `set P KEY=VALUE [KEY=VALUE…]` or `set P KEY VALUE` (applied live to the
    /// running containers using it).
    #[command(after_help = crate::container::schema::help())]
    Set {
        name: String,
        #[arg(required = true, num_args = 1.., value_name = "KEY=VALUE", allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print one key (an empty line when it is not set).
    Get { name: String, key: String },
    /// Remove keys.
    Unset {
        name: String,
        #[arg(required = true, num_args = 1..)]
        keys: Vec<String>,
    },
    /// A profile's devices (as `config device`; its containers get a change at their next
    /// start).
    #[command(subcommand)]
    Device(DeviceOp),
}

/// The running containers a profile change could not reach at once.
fn warn(failed: &[(String, crate::error::Error)]) {
    for (n, e) in failed {
        eprintln!(
            "lxr: warning: {n}: not applied while it runs ({e}); it gets it at its next start"
        );
    }
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    match a.op {
        Op::Create { name } => {
            c.profile_create(&name)?;
            super::say!("Profile {name} created");
        }
        Op::List => {
            let rows = c.profile_list()?;
            let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
            println!("{:w$}  USED BY", "NAME");
            for (n, users) in rows {
                println!("{n:w$}  {}", users.len());
            }
        }
        Op::Show { name } => {
            print!("{}", c.profile(&name)?.to_yaml()?);
            let users: Vec<String> = c
                .profile_list()?
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, u)| u)
                .unwrap_or_default();
            if users.is_empty() {
                println!("used_by: []");
            } else {
                println!("used_by:");
                for u in users {
                    println!("- {u}");
                }
            }
        }
        Op::Edit { name } => {
            let text = super::editor::edit_yaml(&c.profile(&name)?.to_yaml()?, &name)?;
            warn(&c.profile_edit(&name, &text)?);
        }
        Op::Copy { from, to } => c.profile_copy(&from, &to)?,
        Op::Rename { from, to } => c.profile_rename(&from, &to)?,
        Op::Delete { name } => {
            c.profile_delete(&name)?;
            super::say!("Profile {name} deleted");
        }
        Op::Assign {
            container,
            profiles,
        } => {
            let list: Vec<String> = profiles
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
            c.profile_assign(&container, &list)?;
            if list.is_empty() {
                super::say!("Profiles removed from {container}");
            } else {
                super::say!("Profiles {} applied to {container}", list.join(","));
            }
        }
        Op::Add { container, profile } => {
            c.profile_add(&container, &profile)?;
            super::say!("Profile {profile} added to {container}");
        }
        Op::Remove { container, profile } => {
            c.profile_remove(&container, &profile)?;
            super::say!("Profile {profile} removed from {container}");
        }
        Op::Set { name, args } => warn(&c.profile_set(&name, &key_value_pairs(&args)?)?),
        Op::Get { name, key } => println!("{}", c.profile_get(&name, &key)?),
        Op::Unset { name, keys } => warn(&c.profile_unset(&name, &keys)?),
        Op::Device(DeviceOp::Add {
            name,
            device,
            kind,
            options,
        }) => c.profile_device_add(&name, &device, &kind, &options)?,
        Op::Device(DeviceOp::List { name }) => super::device::list(&c.profile(&name)?.devices),
        Op::Device(DeviceOp::Remove { name, device }) => c.profile_device_remove(&name, &device)?,
    }
    Ok(0)
}
