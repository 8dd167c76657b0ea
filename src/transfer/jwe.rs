//! What pforte can check of a JWE without its plaintext: the compact form (five base64url parts), the
//! protected header (`alg` RSA-OAEP-256, `enc` A256GCM, a `kid` of the destination), and the
//! authentication tag (the fifth part), which is recorded so the subscriber can compare it with what
//! it decrypted. Attachments are scanned as they stream in: only the header and the tag are kept.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The protected header is small; a longer first part is not a FIT-Connect JWE.
const MAX_HEADER_CHARS: usize = 4096;
/// An A256GCM tag is 16 bytes: 22 base64url characters.
const TAG_CHARS: usize = 22;

/// What a valid JWE told: the header's key id and its authentication tag (base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JweFacts {
    pub kid: String,
    pub tag: String,
}

/// Reads a compact JWE in pieces, keeping only the header and the tag.
#[derive(Debug, Default)]
pub struct JweScanner {
    /// Index of the part being read (0 to 4).
    part: usize,
    part_len: [usize; 5],
    header: Vec<u8>,
    tag: Vec<u8>,
    problem: Option<String>,
}

impl JweScanner {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.problem.is_some() {
            return;
        }
        for &byte in bytes {
            if byte == b'.' {
                if self.part == 4 {
                    self.problem = Some("a compact JWE has five parts, this one more".into());
                    return;
                }
                self.part += 1;
                continue;
            }
            if !(byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_') {
                self.problem = Some(format!("part {} holds a character that is not base64url", self.part + 1));
                return;
            }
            self.part_len[self.part] += 1;
            match self.part {
                0 if self.header.len() >= MAX_HEADER_CHARS => {
                    self.problem = Some("the protected header is too long".into());
                    return;
                }
                0 => self.header.push(byte),
                4 if self.tag.len() >= TAG_CHARS => {
                    self.problem = Some("the authentication tag is longer than A256GCM's".into());
                    return;
                }
                4 => self.tag.push(byte),
                _ => {}
            }
        }
    }

    /// The header and tag once the whole JWE was fed; `kid_ok` says whether the destination accepts
    /// the header's key id.
    pub fn finish(self, kid_ok: impl Fn(&str) -> bool) -> Result<JweFacts, JweProblem> {
        if let Some(problem) = self.problem {
            return Err(JweProblem::NotAJwe(problem));
        }
        if self.part != 4 {
            return Err(JweProblem::NotAJwe(format!("a compact JWE has five parts, this one {}", self.part + 1)));
        }
        // The encrypted key, the IV and the tag are never empty with RSA-OAEP-256 and A256GCM; the
        // ciphertext may be (empty content).
        if self.part_len[1] == 0 || self.part_len[2] == 0 {
            return Err(JweProblem::NotAJwe("the encrypted key or the IV is empty".into()));
        }
        if self.tag.len() != TAG_CHARS {
            return Err(JweProblem::NotAJwe("the authentication tag is not A256GCM's 16 bytes".into()));
        }
        let header = URL_SAFE_NO_PAD
            .decode(&self.header)
            .ok()
            .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok())
            .ok_or_else(|| JweProblem::NotAJwe("the protected header is not base64url JSON".into()))?;
        let text = |name: &str| header.get(name).and_then(Value::as_str);
        if text("alg") != Some("RSA-OAEP-256") {
            return Err(JweProblem::NotAJwe("the header's alg must be RSA-OAEP-256".into()));
        }
        if text("enc") != Some("A256GCM") {
            return Err(JweProblem::NotAJwe("the header's enc must be A256GCM".into()));
        }
        if header.contains_key("zip") {
            return Err(JweProblem::NotAJwe("compressed JWEs (zip) are not accepted".into()));
        }
        let kid = text("kid").ok_or_else(|| JweProblem::NotAJwe("the header names no kid".into()))?;
        if !kid_ok(kid) {
            return Err(JweProblem::UnknownKey(kid.to_owned()));
        }
        let tag = String::from_utf8(self.tag).map_err(|_| JweProblem::NotAJwe("the tag is not text".into()))?;
        Ok(JweFacts { kid: kid.to_owned(), tag })
    }
}

/// Checks a whole compact JWE (the encrypted metadata or data of a submit).
pub fn check_compact(text: &str, kid_ok: impl Fn(&str) -> bool) -> Result<JweFacts, JweProblem> {
    let mut scanner = JweScanner::default();
    scanner.feed(text.as_bytes());
    scanner.finish(kid_ok)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JweProblem {
    NotAJwe(String),
    /// The header's kid is no encryption key of the destination.
    UnknownKey(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwe(header: &str) -> String {
        format!("{}.{}.{}.{}.{}", b64(header.as_bytes()), b64(&[1; 512]), b64(&[2; 12]), b64(b"cipher"), b64(&[3; 16]))
    }

    const HEADER: &str = r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k1","cty":"application/json"}"#;

    #[test]
    fn a_jwe_fed_in_pieces_gives_its_kid_and_tag() {
        let text = jwe(HEADER);
        let mut scanner = JweScanner::default();
        for piece in text.as_bytes().chunks(7) {
            scanner.feed(piece);
        }
        let facts = scanner.finish(|kid| kid == "k1").unwrap();
        assert_eq!(facts, JweFacts { kid: "k1".into(), tag: b64(&[3; 16]) });
    }

    #[test]
    fn anything_but_five_base64url_parts_is_not_a_jwe() {
        let valid = jwe(HEADER);
        for text in [
            "hello".to_owned(),
            format!("{valid}.x"),
            valid.replacen('.', "", 1),
            valid.replacen('.', ".+", 1),
            format!("{valid}\n"),
            valid.rsplit_once('.').map(|(head, _)| format!("{head}.{}", b64(&[3; 20]))).unwrap(),
        ] {
            assert!(matches!(check_compact(&text, |_| true), Err(JweProblem::NotAJwe(_))), "{text:.60}");
        }
    }

    #[test]
    fn the_header_must_name_rsa_oaep_256_a256gcm_and_a_known_kid() {
        let wrong_alg = jwe(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k1"}"#);
        assert!(matches!(check_compact(&wrong_alg, |_| true), Err(JweProblem::NotAJwe(_))));
        let wrong_enc = jwe(r#"{"alg":"RSA-OAEP-256","enc":"A128CBC-HS256","kid":"k1"}"#);
        assert!(matches!(check_compact(&wrong_enc, |_| true), Err(JweProblem::NotAJwe(_))));
        assert_eq!(check_compact(&jwe(HEADER), |kid| kid == "k2"), Err(JweProblem::UnknownKey("k1".into())));
    }
}
