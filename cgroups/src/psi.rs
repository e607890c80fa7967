//! Pressure stall information: `<res>.pressure` in a cgroup2 cgroup, `/proc/pressure/<res>`
//! on the host. Same format in both places; validated before being served.

use std::path::Path;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};

/// Read and validate a cgroup's `<resource>.pressure` (`cpu`, `io`, `memory`);
/// `Ok(None)` if the cgroup has no such file (v1, or the v2 root on older kernels).
pub fn read(cg: &Cgroup, resource: &str) -> Result<Option<String>> {
    let name = format!("{resource}.pressure");
    match cg.read_opt(&name)? {
        Some(t) => {
            validate(&cg.file(&name), &t)?;
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

/// Check PSI text: lines `some|full avg10=F avg60=F avg300=F total=N`.
pub fn validate(path: &Path, text: &str) -> Result<()> {
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        match f.next() {
            Some("some") | Some("full") => {}
            _ => return Err(Error::parse(path, format!("bad PSI line {line:?}"))),
        }
        for (kv, key) in f.by_ref().zip(["avg10", "avg60", "avg300", "total"]) {
            let ok = kv.split_once('=').is_some_and(|(k, v)| {
                k == key
                    && if key == "total" {
                        v.parse::<u64>().is_ok()
                    } else {
                        v.parse::<f64>().is_ok()
                    }
            });
            if !ok {
                return Err(Error::parse(path, format!("bad PSI field {kv:?}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn valid_and_invalid() {
        let fx = Fixture::new();
        let cg = fx.v2_cgroup("c");
        let ok = "some avg10=0.00 avg60=0.10 avg300=0.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        fx.write(&cg, "cpu.pressure", ok);
        assert_eq!(read(&cg, "cpu").unwrap().as_deref(), Some(ok));
        assert_eq!(read(&cg, "io").unwrap(), None);
        fx.write(&cg, "io.pressure", "some avg10=x\n");
        assert!(read(&cg, "io").is_err());
    }
}
