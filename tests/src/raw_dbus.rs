//! D-Bus by hand, for what a conforming client never does: the ANONYMOUS handshake on a plain
//! socket, method calls built byte by byte (so they can carry what zbus would refuse to send),
//! and the kind of a reply.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Raw connection through the ANONYMOUS handshake.
pub fn raw_handshake(sock: &Path) -> Result<UnixStream, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\0AUTH ANONYMOUS\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    for _ in 0..3 {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        if line.starts_with("DATA") {
            // ANONYMOUS takes optional trace data; send none.
            s.write_all(b"DATA\r\n").map_err(|e| e.to_string())?;
        } else if line.starts_with("OK ") {
            s.write_all(b"BEGIN\r\n").map_err(|e| e.to_string())?;
            return Ok(s);
        } else {
            return Err(format!("handshake answer {line:?}"));
        }
    }
    Err("handshake did not finish".into())
}

fn pad(b: &mut Vec<u8>, a: usize) {
    while !b.len().is_multiple_of(a) {
        b.push(0);
    }
}

fn put_str(b: &mut Vec<u8>, s: &[u8]) {
    pad(b, 4);
    b.extend((s.len() as u32).to_le_bytes());
    b.extend(s);
    b.push(0);
}

/// A little-endian D-Bus method call to the manager with string arguments, built by hand so it
/// can carry what a conforming client never sends.
pub fn method_call(serial: u32, member: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for a in args {
        put_str(&mut body, a);
    }
    let mut m = vec![b'l', 1, 0, 1];
    m.extend((body.len() as u32).to_le_bytes());
    m.extend(serial.to_le_bytes());
    let len_at = m.len();
    m.extend([0u8; 4]);
    let start = m.len();
    let field = |m: &mut Vec<u8>, code: u8, sig: u8, val: &[u8]| {
        pad(m, 8);
        m.extend([code, 1, sig, 0]);
        if sig == b'g' {
            m.push(val.len() as u8);
            m.extend(val);
            m.push(0);
        } else {
            put_str(m, val);
        }
    };
    field(&mut m, 1, b'o', b"/org/linuxcontainers/cgmanager");
    field(&mut m, 2, b's', b"org.linuxcontainers.cgmanager0_0");
    field(&mut m, 3, b's', member.as_bytes());
    let sig = "s".repeat(args.len());
    field(&mut m, 8, b'g', sig.as_bytes());
    let arr = (m.len() - start) as u32;
    m[len_at..len_at + 4].copy_from_slice(&arr.to_le_bytes());
    pad(&mut m, 8);
    m.extend(body);
    m
}

/// What a reply read from `s` says: `ok` for a method return, the error's short name
/// (`NoSuchProcess`) for an error, or what went wrong reading it.
pub fn reply_kind(s: &mut UnixStream) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let n = match s.read(&mut buf) {
        Ok(0) => return "closed".into(),
        Ok(n) => n,
        Err(e) => return format!("read: {e}"),
    };
    let msg = &buf[..n];
    match msg.get(1) {
        Some(2) => "ok".into(),
        Some(3) => {
            let text = String::from_utf8_lossy(msg);
            let prefix = "org.linuxcontainers.cgmanager.Error.";
            text.split_once(prefix)
                .map(|(_, rest)| {
                    rest.chars()
                        .take_while(char::is_ascii_alphanumeric)
                        .collect()
                })
                .unwrap_or_else(|| "error".into())
        }
        t => format!("message type {t:?}"),
    }
}
