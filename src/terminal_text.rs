//! Text from outside (a certificate's CN, SANs and issuer from an untrusted bundle, an API's
//! message, a file name) made safe to show on a terminal: control characters, which could
//! move the cursor, retitle the window or hide text (`ESC [ …`), and the bidirectional
//! overrides that reorder what is read, are shown escaped (`\u{1b}`) instead of acting.
//!
//! Owns: that escaping. Does not own: where it is applied (the CLI's printers, every human
//! line goes through them) or JSON output (JSON escapes control characters itself).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as itself. Newline and tab are layout, not
/// attacks; every other control character (C0, DEL, C1) and the bidi controls are.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character replaced by its `\u{…}` escape.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_shown_not_acted_on() {
        let cn = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}txt.exe\r";
        let shown = sanitize(cn);
        assert!(!shown.chars().any(unsafe_char), "{shown:?}");
        assert_eq!(
            shown,
            "evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{9b}31m\\u{202e}txt.exe\\u{d}"
        );
    }

    #[test]
    fn ordinary_text_is_untouched_and_not_copied() {
        let t = "Issued certificate `mqtt` for mqtt.example.com — 89 days\n\tnext ← ok ✓";
        assert!(matches!(sanitize(t), Cow::Borrowed(_)));
    }
}
