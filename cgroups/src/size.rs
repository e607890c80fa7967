//! Sizes as people write them, one grammar for every place that takes one (lxr's
//! `limits.memory`, `console.log.size`, `--max-size`; cgmanager's policy `memory_max`): a
//! number of bytes with an optional unit —
//!
//! * `K`, `M`, `G`, `T`, `P`, `E` in either case: binary, as the kernel's own cgroup files take
//!   them (`2g` = 2 GiB);
//! * `KiB`, `MiB`, `GiB`, `TiB`, `PiB`, `EiB`: binary, as LXD writes them;
//! * `kB`/`KB`, `MB`, `GB`, `TB`, `PB`, `EB`: decimal, as LXD reads them;
//! * `B` or nothing: bytes.
//!
//! Whitespace between the number and the unit is allowed; fractions and negative numbers are
//! not.

/// A size that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a size ({why}; e.g. 4096, 256MiB, 2G, 1GB)")]
pub struct SizeError {
    text: String,
    why: &'static str,
}

/// Bytes in `text`.
pub fn parse(text: &str) -> Result<u64, SizeError> {
    let err = |why| SizeError {
        text: text.to_string(),
        why,
    };
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err("no number"));
    }
    let n: u64 = num.parse().map_err(|_| err("the number is too large"))?;
    let bin = |p: u32| 1u64 << (10 * p);
    let dec = |p: u32| 1000u64.pow(p);
    let mult = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" => bin(1),
        "m" | "M" | "MiB" => bin(2),
        "g" | "G" | "GiB" => bin(3),
        "t" | "T" | "TiB" => bin(4),
        "p" | "P" | "PiB" => bin(5),
        "e" | "E" | "EiB" => bin(6),
        "kB" | "KB" => dec(1),
        "MB" => dec(2),
        "GB" => dec(3),
        "TB" => dec(4),
        "PB" => dec(5),
        "EB" => dec(6),
        _ => return Err(err("unknown unit")),
    };
    n.checked_mul(mult).ok_or_else(|| err("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_lxd_and_the_kernel_use() {
        assert_eq!(parse("4096").unwrap(), 4096);
        assert_eq!(parse("4096B").unwrap(), 4096);
        assert_eq!(parse("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse("256M").unwrap(), 256 << 20);
        assert_eq!(parse("2g").unwrap(), 2 << 30);
        assert_eq!(parse("2G").unwrap(), 2 << 30);
        assert_eq!(parse("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse("100kB").unwrap(), 100_000);
        assert_eq!(parse("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse(" 8 ").unwrap(), 8);
    }

    #[test]
    fn what_is_not_a_size() {
        for bad in [
            "",
            "G",
            "lots",
            "1XB",
            "1.5G",
            "-1",
            "1 G B",
            "99999999999999999999",
            "16EiB",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("1XB").unwrap_err().to_string();
        assert!(e.contains("unknown unit"), "{e}");
    }
}
