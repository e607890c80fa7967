//! Decimal numbers appended to a rendering without the formatter: meminfo and stat write
//! dozens per read, and `format!`/`to_string` per number was a tenth to a third of a
//! rendering's instructions (callgrind; issue 17).

/// `n` in decimal, right-aligned in at least `width` characters (0: no padding), appended to
/// `out`: byte for byte what `write!(out, "{n:>width$}")` gives.
pub(crate) fn push_u64(out: &mut String, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - i)..width {
        out.push(' ');
    }
    // The digits are ASCII.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_the_formatter_writes_them() {
        for n in [0, 7, 10, 99_999_999, 123_456_789, u64::MAX] {
            for width in [0, 1, 8, 25] {
                let mut s = String::from("x");
                push_u64(&mut s, n, width);
                assert_eq!(s, format!("x{n:>width$}"));
            }
        }
    }
}
