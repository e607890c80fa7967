//! The editing step of `config edit`, `profile edit` and `file edit`, as Incus does it: with a
//! terminal on standard input, `$VISUAL`, `$EDITOR` or `vi` opens a private temporary copy of
//! the content; otherwise the new content is read from standard input
//! (`lxr config edit c1 < c1.yaml`, `lxr file edit c1/etc/hosts < hosts`).

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::error::{Context, Error, Result};

/// Largest YAML (`config edit`, `profile edit`) read from standard input.
pub const MAX_YAML: u64 = 4 << 20;

/// The edited YAML of `current` (`what` names it in the temporary file's name).
pub fn edit_yaml(current: &str, what: &str) -> Result<String> {
    let new = edit(current.as_bytes(), &format!("{what}.yaml"), Some(MAX_YAML))?;
    String::from_utf8(new).map_err(|_| Error::Usage("the new YAML is not UTF-8".into()))
}

/// The edited copy of `current`: from the user's editor on a terminal, else all of standard
/// input (at most `max` bytes when given). `name` ends the temporary file's name (its
/// extension lets the editor pick a syntax). An editor that fails is an error: nothing changed.
pub fn edit(current: &[u8], name: &str, max: Option<u64>) -> Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() {
        return read_stdin(max);
    }
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let (path, mut f) = private_file(name)?;
    let r = (|| {
        f.write_all(current)
            .ctx(|| format!("write {}", path.display()))?;
        drop(f);
        // Through the shell: $EDITOR may carry arguments (`code --wait`), as git allows.
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
            .ctx(|| format!("run {editor}"))?;
        if !st.success() {
            return Err(Error::Usage(format!(
                "the editor ({editor}) failed ({st}): nothing changed"
            )));
        }
        std::fs::read(&path).ctx(|| format!("read {}", path.display()))
    })();
    let _ = std::fs::remove_file(&path);
    r
}

/// All of standard input, refused beyond `max` bytes.
fn read_stdin(max: Option<u64>) -> Result<Vec<u8>> {
    let mut d = Vec::new();
    let stdin = std::io::stdin();
    match max {
        Some(max) => {
            stdin
                .take(max + 1)
                .read_to_end(&mut d)
                .ctx(|| "read standard input".into())?;
            if d.len() as u64 > max {
                return Err(Error::Usage(format!(
                    "standard input is larger than {max} bytes"
                )));
            }
        }
        None => {
            stdin
                .lock()
                .read_to_end(&mut d)
                .ctx(|| "read standard input".into())?;
        }
    }
    Ok(d)
}

/// A new private file (mode 0600, O_EXCL: never an existing file or a symlink another user
/// planted in a shared /tmp) under a name nobody can guess ahead, in `$XDG_RUNTIME_DIR` when
/// there is one, else the temporary directory.
fn private_file(name: &str) -> Result<(PathBuf, std::fs::File)> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut attempt = 0;
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            "lxr-edit-{}-{nanos:08x}-{attempt}-{name}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 20 => attempt += 1,
            Err(e) => return Err(e).ctx(|| format!("create {}", path.display())),
        }
    }
}
