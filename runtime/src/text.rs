//! Text that came from an image (its description and properties, file names in an archive, a
//! helper's complaints about them) is printed on the user's terminal. A terminal obeys escape
//! sequences — retitle, recolour, move the cursor over earlier output, on some terminals answer
//! back — so such text is cleaned once, where it enters lxr: control characters (C0, DEL, C1)
//! become `?`, tabs and (where allowed) newlines stay.

/// `s` without control characters; newlines kept when `multiline`.
pub fn clean(s: &str, multiline: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => c,
            '\n' if multiline => c,
            c if c.is_control() => '?',
            // Bidirectional overrides reorder what the user reads (Trojan Source).
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '?',
            c => c,
        })
        .collect()
}

/// One line of image-provided text, cleaned.
pub fn line(s: &str) -> String {
    clean(s, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_defused() {
        assert_eq!(line("ok \x1b]0;pwned\x07 \u{9b}31m"), "ok ?]0;pwned? ?31m");
        assert_eq!(clean("a\nb\r\n", true), "a\nb?\n");
        assert_eq!(line("a\nb"), "a?b");
        assert_eq!(line("tab\there é"), "tab\there é");
        assert_eq!(line("x\u{202e}y"), "x?y");
    }
}
