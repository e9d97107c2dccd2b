//! Reading PEM files as people actually have them: certbot output, purchased
//! bundles, copy-pasted text. [`parse_bundle`] finds every PEM block, decodes
//! the certificates, classifies the private-key blocks and says what it had to
//! tolerate (BOM, CRLF, trailing spaces, text between blocks, …);
//! [`normalise_pem`] writes canonical PEM back.
//!
//! Owns: PEM framing, base64 decoding with block-numbered errors, DER detection.
//! Does not own: what the certificates mean or their order (see `chain`), or
//! turning key blocks into usable keys (see `keys`).

use std::fmt;

use super::certificate::{Certificate, CertificateError};

/// Largest input [`parse_bundle`] accepts (1 MiB); a real chain is a few KiB.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// Why a PEM bundle could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Nothing but whitespace.
    #[error("the input is empty; expected PEM text with -----BEGIN CERTIFICATE----- blocks")]
    Empty,
    /// Over [`MAX_BUNDLE_BYTES`].
    #[error(
        "the input is {size} bytes, larger than the {max} bytes a certificate bundle may have; expected a PEM file of a few kilobytes"
    )]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Binary DER instead of PEM text.
    #[error(
        "the input is binary DER{what}, not PEM text; convert it with `openssl x509 -inform der -in F -out F.pem` (for a certificate) and use the .pem file"
    )]
    LooksLikeDer {
        /// ` (a certificate for CN=…)` when the DER parsed as a certificate.
        what: String,
    },
    /// Text without any `-----BEGIN` line.
    #[error(
        "no PEM block was found in {size} bytes of input; expected text containing -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"
    )]
    NoPemBlock {
        /// Input size.
        size: usize,
    },
    /// A BEGIN line whose END line never comes.
    #[error(
        "PEM block {block} (-----BEGIN {label}-----, line {line}) has no -----END {label}----- line{before}; the file looks truncated or two blocks were pasted into each other"
    )]
    UnterminatedBlock {
        /// 1-based block number.
        block: usize,
        /// The BEGIN label.
        label: String,
        /// 1-based line of the BEGIN line.
        line: usize,
        /// ` before the next BEGIN line (line N)` or empty.
        before: String,
    },
    /// An END line before any BEGIN line.
    #[error(
        "line {line} has -----END {label}----- without a matching BEGIN line; the start of the block is missing"
    )]
    UnmatchedEnd {
        /// 1-based line.
        line: usize,
        /// The END label.
        label: String,
    },
    /// BEGIN X ... END Y.
    #[error(
        "PEM block {block} (line {line}) begins with -----BEGIN {begin}----- but ends with -----END {end}-----; expected both lines to name the same type"
    )]
    MismatchedLabels {
        /// 1-based block number.
        block: usize,
        /// 1-based line of the BEGIN line.
        line: usize,
        /// BEGIN label.
        begin: String,
        /// END label.
        end: String,
    },
    /// The body isn't valid base64 (often a truncated copy).
    #[error(
        "PEM block {block} ({label}, line {line}) does not contain valid base64 ({reason}); the block is probably truncated or was edited — copy it again in full"
    )]
    InvalidBase64 {
        /// 1-based block number.
        block: usize,
        /// The label.
        label: String,
        /// 1-based line of the BEGIN line.
        line: usize,
        /// What the decoder reported.
        reason: String,
    },
    /// A CERTIFICATE block whose DER is not a certificate.
    #[error(
        "PEM block {block} (CERTIFICATE, line {line}) is not a valid X.509 certificate: {error}"
    )]
    InvalidCertificate {
        /// 1-based block number.
        block: usize,
        /// 1-based line of the BEGIN line.
        line: usize,
        /// The parse error (in the message, deliberately not a `source()`).
        error: CertificateError,
    },
}

/// Format of a private-key PEM block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrivateKeyFormat {
    /// `PRIVATE KEY` (PKCS#8, unencrypted).
    Pkcs8,
    /// `RSA PRIVATE KEY` (PKCS#1).
    Pkcs1Rsa,
    /// `EC PRIVATE KEY` (SEC1).
    Sec1Ec,
    /// `ENCRYPTED PRIVATE KEY` (PKCS#8, password protected).
    EncryptedPkcs8,
    /// A legacy OpenSSL block with `Proc-Type: 4,ENCRYPTED`.
    LegacyEncrypted,
}

impl PrivateKeyFormat {
    /// Whether the key needs a password before it can be used.
    pub fn is_encrypted(self) -> bool {
        matches!(
            self,
            PrivateKeyFormat::EncryptedPkcs8 | PrivateKeyFormat::LegacyEncrypted
        )
    }
}

impl fmt::Display for PrivateKeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrivateKeyFormat::Pkcs8 => "PKCS#8",
            PrivateKeyFormat::Pkcs1Rsa => "PKCS#1 RSA",
            PrivateKeyFormat::Sec1Ec => "SEC1 EC",
            PrivateKeyFormat::EncryptedPkcs8 => "encrypted PKCS#8",
            PrivateKeyFormat::LegacyEncrypted => {
                "legacy OpenSSL encrypted (Proc-Type: 4,ENCRYPTED)"
            }
        })
    }
}

/// A private-key block found in a bundle. Its `Debug` never shows key material.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyBlock {
    /// Which format the block's label and headers say it is.
    pub format: PrivateKeyFormat,
    /// 1-based number of the block in the file.
    pub block: usize,
    /// The PEM label as written (`PRIVATE KEY`, `RSA PRIVATE KEY`, …).
    pub label: String,
    der: Vec<u8>,
}

impl PrivateKeyBlock {
    /// The decoded block contents (ciphertext for encrypted formats).
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for PrivateKeyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyBlock")
            .field("format", &self.format)
            .field("block", &self.block)
            .field("der", &format_args!("[{} bytes elided]", self.der.len()))
            .finish()
    }
}

/// What [`parse_bundle`] found.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// CERTIFICATE (and TRUSTED CERTIFICATE) blocks, in file order.
    pub certificates: Vec<Certificate>,
    /// The 1-based block number of each of `certificates` (blocks of every
    /// type are counted), so messages can point at the file as written.
    pub certificate_blocks: Vec<usize>,
    /// Private-key blocks, in file order.
    pub private_keys: Vec<PrivateKeyBlock>,
    /// What was normalised or skipped, one sentence each.
    pub notes: Vec<String>,
}

/// One PEM block located in the input.
struct RawBlock<'a> {
    label: &'a str,
    line: usize,
    body: &'a [u8],
}

/// Parses PEM text: certificates in file order, private-key blocks, and notes.
///
/// Tolerates a UTF-8 BOM, CRLF line endings, trailing whitespace, text between
/// blocks, RFC 1421 headers, and JSON-style literal `\n` escapes. Blocks of
/// other types (CRLs, CSRs, parameters) are skipped with a note.
pub fn parse_bundle(text: &[u8]) -> Result<Bundle, BundleError> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge {
            size: text.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    let mut notes = Vec::new();
    let mut input: &[u8] = text;
    if let Some(rest) = input.strip_prefix(b"\xEF\xBB\xBF") {
        input = rest;
        notes.push("removed a UTF-8 byte order mark at the start".to_string());
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(BundleError::Empty);
    }
    if !contains(input, b"-----BEGIN ") && !contains(input, b"-----END ") {
        return Err(no_pem_error(input));
    }

    // JSON/env-var style PEM with literal "\n" escapes and no real line breaks.
    let unescaped;
    if !input.contains(&b'\n') && contains(input, b"\\n") {
        unescaped = unescape_newlines(input);
        input = &unescaped;
        notes.push("decoded literal \\n escapes into line breaks".to_string());
    }

    if contains(input, b"\r\n") {
        notes.push("converted CRLF line endings to LF".to_string());
    }
    if has_trailing_whitespace(input) {
        notes.push("ignored trailing whitespace at the end of lines".to_string());
    }

    let blocks = locate_blocks(input, &mut notes)?;
    let mut bundle = Bundle::default();
    for (i, raw) in blocks.iter().enumerate() {
        let number = i + 1;
        let (headers, data) = split_headers(raw.body);
        let der = decode_base64(raw.label, &data).map_err(|reason| BundleError::InvalidBase64 {
            block: number,
            label: raw.label.to_string(),
            line: raw.line,
            reason,
        })?;
        let encrypted_headers = headers.iter().any(|h| {
            h.to_ascii_uppercase()
                .replace(' ', "")
                .contains("PROC-TYPE:4,ENCRYPTED")
        });
        match raw.label {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                let trusted = raw.label == "TRUSTED CERTIFICATE";
                let parsed = if trusted {
                    Certificate::from_der_prefix(&der).map(|(c, _)| c)
                } else {
                    Certificate::from_der(&der)
                };
                let cert = parsed.map_err(|error| BundleError::InvalidCertificate {
                    block: number,
                    line: raw.line,
                    error,
                })?;
                if trusted {
                    notes.push(format!(
                        "block {number} is an OpenSSL TRUSTED CERTIFICATE; its trust settings were dropped"
                    ));
                }
                bundle.certificates.push(cert);
                bundle.certificate_blocks.push(number);
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                let format = if encrypted_headers {
                    PrivateKeyFormat::LegacyEncrypted
                } else {
                    match raw.label {
                        "RSA PRIVATE KEY" => PrivateKeyFormat::Pkcs1Rsa,
                        "EC PRIVATE KEY" => PrivateKeyFormat::Sec1Ec,
                        "ENCRYPTED PRIVATE KEY" => PrivateKeyFormat::EncryptedPkcs8,
                        _ => PrivateKeyFormat::Pkcs8,
                    }
                };
                bundle.private_keys.push(PrivateKeyBlock {
                    format,
                    block: number,
                    label: raw.label.to_string(),
                    der,
                });
            }
            "PKCS7" => notes.push(format!(
                "skipped block {number} (PKCS7): extract its certificates with `openssl pkcs7 -print_certs -in F -out F.pem`"
            )),
            other => notes.push(format!("skipped block {number} ({other}): not a certificate or private key")),
        }
    }
    bundle.notes = notes;
    Ok(bundle)
}

/// Canonical PEM for `certs`: one block each, 64-column base64, `\n` line ends.
pub fn normalise_pem(certs: &[Certificate]) -> String {
    certs.iter().map(Certificate::to_pem).collect()
}

fn no_pem_error(input: &[u8]) -> BundleError {
    let der_like = input.first() == Some(&0x30) && matches!(input.get(1), Some(0x80..=0x84));
    if der_like {
        let what = match Certificate::from_der_prefix(input) {
            Ok((cert, _)) => format!(" (a certificate for {})", cert.display_name()),
            Err(_) => String::new(),
        };
        return BundleError::LooksLikeDer { what };
    }
    BundleError::NoPemBlock { size: input.len() }
}

/// The first certificate of a PEM bundle, as `parse_bundle(text)`'s first one (`None` when
/// it has none or cannot be read). A file of one plain `CERTIFICATE` block with LF line
/// breaks — what brokercert stores — is decoded in one pass; anything else goes through
/// [`parse_bundle`] and its tolerances. A no-op `renew` reads every stored leaf this way.
pub fn first_certificate(text: &[u8]) -> Option<Certificate> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----\n";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let trimmed = text.trim_ascii_end();
    let plain = text.len() <= MAX_BUNDLE_BYTES
        && text.starts_with(BEGIN)
        && trimmed.ends_with(END)
        && trimmed.len() >= BEGIN.len() + END.len()
        && !trimmed[BEGIN.len()..trimmed.len() - END.len()]
            .iter()
            .any(|b| matches!(b, b'-' | b'\r' | b':'));
    if plain
        && let Ok(block) = pem::parse(text)
        && let Ok(cert) = Certificate::from_der(block.contents())
    {
        return Some(cert);
    }
    parse_bundle(text).ok()?.certificates.into_iter().next()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle, 0).is_some()
}

/// Position of `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn line_of(input: &[u8], pos: usize) -> usize {
    input
        .get(..pos)
        .map_or(0, |before| before.iter().filter(|b| **b == b'\n').count())
        + 1
}

fn unescape_newlines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match (input[i], input.get(i + 1)) {
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\\', Some(b'r')) => i += 2,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn has_trailing_whitespace(input: &[u8]) -> bool {
    input.split(|b| *b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        matches!(line.last(), Some(b' ' | b'\t'))
    })
}

/// A label is printable ASCII, no dashes at its ends, at most 64 bytes.
fn parse_label(input: &[u8], start: usize) -> Option<(&str, usize)> {
    let end = find(input, b"-----", start)?;
    let label = input.get(start..end)?;
    if label.len() > 64 || label.iter().any(|b| !(0x20..0x7f).contains(b)) {
        return None;
    }
    let label = std::str::from_utf8(label).ok()?.trim();
    Some((label, end + 5))
}

fn locate_blocks<'a>(
    input: &'a [u8],
    notes: &mut Vec<String>,
) -> Result<Vec<RawBlock<'a>>, BundleError> {
    let mut blocks = Vec::new();
    let mut pos = 0;
    let mut stray_text = false;
    loop {
        let next_begin = find(input, b"-----BEGIN ", pos);
        let outside_end = next_begin.unwrap_or(input.len());
        let outside = input.get(pos..outside_end).unwrap_or_default();
        if let Some(end_at) = find(outside, b"-----END ", 0) {
            let abs = pos + end_at;
            let label = parse_label(input, abs + 9).map_or("?", |(l, _)| l);
            return Err(BundleError::UnmatchedEnd {
                line: line_of(input, abs),
                label: label.to_string(),
            });
        }
        if outside.iter().any(|b| !b.is_ascii_whitespace()) {
            stray_text = true;
        }
        let Some(begin) = next_begin else { break };
        let number = blocks.len() + 1;
        let line = line_of(input, begin);
        let Some((label, body_start)) = parse_label(input, begin + 11) else {
            return Err(BundleError::UnterminatedBlock {
                block: number,
                label: "?".to_string(),
                line,
                before: String::new(),
            });
        };
        let end = find(input, b"-----END ", body_start);
        let following_begin = find(input, b"-----BEGIN ", body_start);
        let end = match (end, following_begin) {
            (Some(e), Some(b)) if b < e => {
                return Err(BundleError::UnterminatedBlock {
                    block: number,
                    label: label.to_string(),
                    line,
                    before: format!(" before the next BEGIN line (line {})", line_of(input, b)),
                });
            }
            (Some(e), _) => e,
            (None, _) => {
                return Err(BundleError::UnterminatedBlock {
                    block: number,
                    label: label.to_string(),
                    line,
                    before: String::new(),
                });
            }
        };
        let Some((end_label, after)) = parse_label(input, end + 9) else {
            return Err(BundleError::UnterminatedBlock {
                block: number,
                label: label.to_string(),
                line,
                before: String::new(),
            });
        };
        if end_label != label {
            return Err(BundleError::MismatchedLabels {
                block: number,
                line,
                begin: label.to_string(),
                end: end_label.to_string(),
            });
        }
        blocks.push(RawBlock {
            label,
            line,
            body: input.get(body_start..end).unwrap_or_default(),
        });
        pos = after;
    }
    if stray_text {
        notes.push("ignored text outside the PEM blocks".to_string());
    }
    Ok(blocks)
}

/// Splits RFC 1421 headers (`Key: value` lines up to a blank line) from the
/// base64 body; returns the headers and the body with all whitespace removed.
fn split_headers(body: &[u8]) -> (Vec<String>, Vec<u8>) {
    let text = String::from_utf8_lossy(body);
    let all: Vec<&str> = text.lines().map(str::trim).collect();
    let leading_blank = all.iter().take_while(|l| l.is_empty()).count();
    let lines = all.get(leading_blank..).unwrap_or_default();
    let mut headers = Vec::new();
    let mut first_data = 0;
    if lines.iter().any(|l| l.contains(':')) {
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                first_data = i + 1;
                break;
            }
            if line.contains(':') {
                headers.push((*line).to_string());
                first_data = i + 1;
            } else {
                break;
            }
        }
    }
    let data = lines
        .get(first_data..)
        .unwrap_or_default()
        .iter()
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    (headers, data)
}

/// Base64-decodes by handing one canonical PEM block to the `pem` crate.
fn decode_base64(label: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    if data.is_empty() {
        return Err("the block has no data".to_string());
    }
    let mut text = Vec::with_capacity(data.len() + 2 * label.len() + 40);
    text.extend_from_slice(b"-----BEGIN ");
    text.extend_from_slice(label.as_bytes());
    text.extend_from_slice(b"-----\n");
    for chunk in data.chunks(64) {
        text.extend_from_slice(chunk);
        text.push(b'\n');
    }
    text.extend_from_slice(b"-----END ");
    text.extend_from_slice(label.as_bytes());
    text.extend_from_slice(b"-----\n");
    match pem::parse(&text) {
        Ok(block) => Ok(block.into_contents()),
        Err(pem::PemError::InvalidData(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::test_support::*;

    #[test]
    fn first_certificate_is_parse_bundles_first_with_or_without_the_fast_path() {
        let (root, chain) = ecdsa_chain(1);
        let leaf = &chain[0];
        let plain = leaf.to_pem();
        let variants = [
            plain.clone(),
            format!("{plain}\n  \n"),
            plain.replace('\n', "\r\n"),
            format!("\u{feff}{plain}"),
            format!("Subject: broker\n{plain}"),
            pem_of(&[leaf.clone(), root.cert.clone()]),
            pem_of(&[root.cert.clone(), leaf.clone()]),
        ];
        for text in &variants {
            let expected = parse_bundle(text.as_bytes())
                .ok()
                .and_then(|b| b.certificates.into_iter().next());
            assert!(expected.is_some(), "{text}");
            assert_eq!(first_certificate(text.as_bytes()), expected, "{text}");
        }
        // What parse_bundle refuses, the fast path does not accept either.
        let damaged = plain.replacen("MII", "M?I", 1);
        assert!(parse_bundle(damaged.as_bytes()).is_err());
        assert_eq!(first_certificate(damaged.as_bytes()), None);
        let truncated = &plain[..plain.len() / 2];
        assert_eq!(first_certificate(truncated.as_bytes()), None);
        assert_eq!(first_certificate(b""), None);
    }

    #[test]
    fn tolerates_bom_crlf_trailing_space_and_text_between_blocks() {
        let (root, chain) = ecdsa_chain(1);
        let mut text = String::from("\u{feff}Subject: broker\r\nIssuer: whatever\r\n");
        for cert in &chain {
            text.push_str(&cert.to_pem().replace('\n', "  \r\n"));
            text.push_str("\r\nbag attributes and comments\r\n\r\n");
        }
        text.push_str(&root.cert.to_pem().replace('\n', "\r\n"));
        let bundle = parse_bundle(text.as_bytes()).unwrap();
        assert_eq!(bundle.certificates.len(), 3);
        assert_eq!(bundle.certificates[0], chain[0]);
        assert_eq!(bundle.certificates[1], chain[1]);
        assert_eq!(bundle.certificates[2], root.cert);
        assert!(bundle.private_keys.is_empty());
        let notes = bundle.notes.join("\n");
        assert!(notes.contains("byte order mark"), "{notes}");
        assert!(notes.contains("CRLF"), "{notes}");
        assert!(notes.contains("trailing whitespace"), "{notes}");
        assert!(notes.contains("text outside"), "{notes}");

        let canonical = normalise_pem(&bundle.certificates);
        assert!(!canonical.contains('\r'));
        assert_eq!(
            canonical,
            pem_of(&[chain[0].clone(), chain[1].clone(), root.cert.clone()])
        );
        let again = parse_bundle(canonical.as_bytes()).unwrap();
        assert!(again.notes.is_empty(), "{:?}", again.notes);
    }

    #[test]
    fn reports_truncated_base64_with_the_block_number() {
        let (root, chain) = ecdsa_chain(1);
        let second = chain[1].to_pem();
        let body_end = second.find("-----END").unwrap();
        // Cut the second block's base64 in the middle of its last line.
        let cut = format!("{}\n-----END CERTIFICATE-----\n", &second[..body_end - 7]);
        let text = format!("{}{}{}", chain[0].to_pem(), cut, root.cert.to_pem());
        let err = parse_bundle(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, BundleError::InvalidBase64 { block: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("PEM block 2"), "{err}");

        // A block that lost whole lines still decodes but is no certificate.
        let lines: Vec<&str> = second.lines().collect();
        let short = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]);
        let err = parse_bundle(short.as_bytes()).unwrap_err();
        assert!(
            matches!(err, BundleError::InvalidCertificate { block: 1, .. }),
            "{err}"
        );

        // And a file cut before its END line.
        let err = parse_bundle(&second.as_bytes()[..body_end]).unwrap_err();
        assert!(
            matches!(err, BundleError::UnterminatedBlock { block: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn detects_der_input_and_says_how_to_convert() {
        let (root, _) = ecdsa_chain(0);
        let err = parse_bundle(root.cert.der()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BundleError::LooksLikeDer { .. }), "{msg}");
        assert!(
            msg.contains("openssl x509 -inform der -in F -out F.pem"),
            "{msg}"
        );
        assert!(msg.contains("CN=Test Root X9"), "{msg}");
        let err = parse_bundle(&[0x30, 0x82, 0x01, 0x00, 0xff]).unwrap_err();
        assert!(matches!(err, BundleError::LooksLikeDer { .. }), "{err}");
    }

    #[test]
    fn rejects_empty_plain_text_and_oversized_input() {
        assert_eq!(parse_bundle(b"").unwrap_err(), BundleError::Empty);
        assert_eq!(
            parse_bundle(b"\xEF\xBB\xBF \r\n\t").unwrap_err(),
            BundleError::Empty
        );
        assert!(matches!(
            parse_bundle(b"hello world").unwrap_err(),
            BundleError::NoPemBlock { size: 11 }
        ));
        let big = vec![b' '; MAX_BUNDLE_BYTES + 1];
        let err = parse_bundle(&big).unwrap_err();
        assert!(matches!(err, BundleError::TooLarge { .. }), "{err}");
        let err = parse_bundle(b"junk\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(
            matches!(err, BundleError::UnmatchedEnd { line: 2, .. }),
            "{err}"
        );
        let err = parse_bundle(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n")
            .unwrap_err();
        assert!(matches!(err, BundleError::MismatchedLabels { .. }), "{err}");
    }

    #[test]
    fn classifies_private_key_blocks_including_encrypted_markers() {
        let key = ecdsa_p256();
        let (root, chain) = ecdsa_chain(0);
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAECAwQFBgcICQoLDA0ODw==\n-----END RSA PRIVATE KEY-----\n";
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let text = format!(
            "{}{}{}{legacy}{encrypted}-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            chain[0].to_pem(),
            key.serialize_pem(),
            root.cert.to_pem()
        );
        let bundle = parse_bundle(text.as_bytes()).unwrap();
        assert_eq!(bundle.certificates.len(), 2);
        let formats: Vec<_> = bundle
            .private_keys
            .iter()
            .map(|k| (k.block, k.format))
            .collect();
        assert_eq!(
            formats,
            [
                (2, PrivateKeyFormat::Pkcs8),
                (4, PrivateKeyFormat::LegacyEncrypted),
                (5, PrivateKeyFormat::EncryptedPkcs8)
            ]
        );
        assert!(bundle.private_keys[1].format.is_encrypted());
        assert_eq!(bundle.private_keys[0].der(), key.serialized_der());
        let dbg = format!("{:?}", bundle.private_keys[0]);
        assert!(dbg.contains("elided"), "{dbg}");
        assert!(
            bundle.notes.iter().any(|n| n.contains("X509 CRL")),
            "{:?}",
            bundle.notes
        );
    }

    #[test]
    fn accepts_json_escaped_pem() {
        let (root, _) = ecdsa_chain(0);
        let escaped = root.cert.to_pem().replace('\n', "\\n");
        let bundle = parse_bundle(escaped.as_bytes()).unwrap();
        assert_eq!(bundle.certificates, [root.cert]);
        assert!(bundle.notes.iter().any(|n| n.contains("\\n escapes")));
    }
}
