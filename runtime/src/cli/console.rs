//! `lxr console NAME`: attach to the container's console (the pty its init has on
//! `/dev/console`). On a terminal it goes raw; `Ctrl-a q` detaches. Without a terminal, what is
//! piped in is typed, and output is shown until a second after the input ends.

use std::io::{Read, Write};
use std::time::Duration;

use crate::error::{Context, Result};
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Print what the console kept (`console.log`, bounded by `console.log.size`) and exit.
    #[arg(long)]
    show_log: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    if a.show_log {
        let _ = std::io::stdout().write_all(&c.console_log(&a.name)?);
        return Ok(0);
    }
    let sock = c.console(&a.name)?;
    let tty = crate::term::stdin_is_tty();
    let _raw = crate::term::raw()?;
    if tty {
        eprint!("Attached to {}'s console; Ctrl-a q detaches.\r\n", a.name);
    }
    let mut from = sock.try_clone().ctx(|| "console socket".into())?;
    std::thread::spawn(move || {
        let mut out = std::io::stdout();
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
    });
    let mut to = sock;
    let mut input = std::io::stdin().lock();
    let mut buf = [0u8; 1024];
    let mut escape = false;
    loop {
        let n = input.read(&mut buf).ctx(|| "read stdin".into())?;
        if n == 0 {
            // Piped input ended: leave the container a moment to answer.
            std::thread::sleep(Duration::from_secs(1));
            break;
        }
        let mut chunk = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if tty && escape {
                escape = false;
                if b == b'q' {
                    eprint!("\r\nDetached.\r\n");
                    return Ok(0);
                }
                chunk.push(0x01);
            }
            if tty && b == 0x01 {
                escape = true;
                continue;
            }
            chunk.push(b);
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    Ok(0)
}
