//! The editing step of `config edit` and `profile edit`, as Incus does it: with a terminal on
//! standard input, `$VISUAL`, `$EDITOR` or `vi` opens a private temporary copy of the YAML;
//! otherwise the new YAML is read from standard input (`lxr config edit c1 < c1.yaml`).

use std::io::{IsTerminal, Read, Write};

use crate::error::{Context, Error, Result};

/// Largest YAML read from standard input.
const MAX: u64 = 4 << 20;

/// The edited text of `current` (`what` names it in messages and the temporary file).
pub fn edit(current: &str, what: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX + 1)
            .read_to_string(&mut s)
            .ctx(|| "read standard input".into())?;
        if s.len() as u64 > MAX {
            return Err(Error::Usage(format!(
                "standard input is larger than {MAX} bytes"
            )));
        }
        return Ok(s);
    }
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    // A private file (lxr runs with umask 077), made with O_EXCL under a fresh name.
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| std::path::Path::new(d).is_dir())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!(
        "lxr-edit-{what}-{}-{}.yaml",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("create {}", path.display()))?;
        f.write_all(current.as_bytes())
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
        std::fs::read_to_string(&path).ctx(|| format!("read {}", path.display()))
    })();
    let _ = std::fs::remove_file(&path);
    r
}
