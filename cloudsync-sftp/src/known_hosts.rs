//! Host-key verification against an OpenSSH `known_hosts` file.
//!
//! Supports what OpenSSH writes and users edit: plain and hashed (`|1|salt|hash`) host names,
//! `[host]:port` for non-standard ports, comma-separated patterns with `*`/`?` wildcards and
//! `!` negation, comments, and the `@revoked` marker (`@cert-authority` lines are ignored: host
//! certificates are not used). Lines that cannot be parsed are skipped, never fatal.

use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::{HashAlg, PublicKey};

/// What the known_hosts file says about a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line lists this host with this key.
    Known,
    /// No line lists this host.
    Unknown,
    /// The host is listed, but with other keys (line numbers, 1-based).
    Changed(Vec<usize>),
    /// The key is marked `@revoked` (line number).
    Revoked(usize),
}

/// The name a host is recorded under: `host`, or `[host]:port` for ports other than 22.
pub(crate) fn host_key_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The SHA-256 fingerprint OpenSSH prints (`SHA256:...`).
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` for `host`:`port` against the text of a known_hosts file.
pub(crate) fn check_text(text: &str, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_key_name(host, port);
    let mut known = false;
    let mut other_lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let mut first = fields.next().unwrap_or("");
        let mut revoked = false;
        if let Some(marker) = first.strip_prefix('@') {
            match marker {
                "revoked" => revoked = true,
                // Certificate authorities and unknown markers do not vouch for plain keys.
                _ => continue,
            }
            first = fields.next().unwrap_or("");
        }
        let (Some(key_type), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, &name) {
            continue;
        }
        let Ok(recorded) = PublicKey::from_openssh(&format!("{key_type} {blob}")) else {
            tracing::debug!(line = line_no, "known_hosts: skipping unparsable key");
            continue;
        };
        let same = recorded.key_data() == key.key_data();
        if revoked {
            if same {
                return Verdict::Revoked(line_no);
            }
            continue;
        }
        if same {
            known = true;
        } else {
            other_lines.push(line_no);
        }
    }
    if known {
        Verdict::Known
    } else if other_lines.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Changed(other_lines)
    }
}

/// Checks against a file; a missing file knows no hosts.
pub(crate) fn check_file(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> std::io::Result<Verdict> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(check_text(
            &String::from_utf8_lossy(&bytes),
            host,
            port,
            key,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Verdict::Unknown),
        Err(e) => Err(e),
    }
}

/// Whether a comma-separated pattern list matches `name`: some positive pattern matches and no
/// negated (`!`) pattern does.
fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(neg) = pattern.strip_prefix('!') {
            if wildcard_match(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if wildcard_match(&pattern.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            matched = true;
        }
    }
    matched
}

/// `salt|hash` (both base64): HMAC-SHA1 keyed by the salt over the name.
fn hashed_match(hashed: &str, name: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Glob match with `*` (any run) and `?` (one character), as OpenSSH's `match_pattern`.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn hashed_entry(name: &str, salt: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!("|1|{}|{}", b64.encode(salt), b64.encode(hash))
    }

    #[test]
    fn plain_port_and_patterns() {
        let text = format!(
            "# comment\n\nexample.com,10.0.0.1 {KEY_A}\n[example.com]:2222\t{KEY_B} comment here\n*.lan,!bad.lan {KEY_A}\n"
        );
        let a = key(KEY_A);
        let b = key(KEY_B);
        assert_eq!(check_text(&text, "example.com", 22, &a), Verdict::Known);
        assert_eq!(check_text(&text, "EXAMPLE.com", 22, &a), Verdict::Known);
        assert_eq!(check_text(&text, "10.0.0.1", 22, &a), Verdict::Known);
        assert_eq!(check_text(&text, "example.com", 2222, &b), Verdict::Known);
        assert_eq!(
            check_text(&text, "example.com", 2222, &a),
            Verdict::Changed(vec![4])
        );
        assert_eq!(
            check_text(&text, "example.com", 22, &b),
            Verdict::Changed(vec![3])
        );
        assert_eq!(check_text(&text, "other.com", 22, &a), Verdict::Unknown);
        assert_eq!(check_text(&text, "nas.lan", 22, &a), Verdict::Known);
        assert_eq!(check_text(&text, "bad.lan", 22, &a), Verdict::Unknown);
    }

    #[test]
    fn hashed_and_revoked() {
        let a = key(KEY_A);
        let text = format!(
            "{} {KEY_A}\n@revoked * {KEY_B}\ngarbage line\nx ssh-ed25519 notbase64!\n",
            hashed_entry("[127.0.0.1]:4022", b"0123456789abcdefghij")
        );
        assert_eq!(check_text(&text, "127.0.0.1", 4022, &a), Verdict::Known);
        assert_eq!(check_text(&text, "127.0.0.1", 22, &a), Verdict::Unknown);
        assert_eq!(
            check_text(&text, "127.0.0.1", 22, &key(KEY_B)),
            Verdict::Revoked(2)
        );
        assert!(fingerprint(&a).starts_with("SHA256:"));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "abbc"));
        assert!(wildcard_match("*.example.*", "x.example.org"));
        assert!(!wildcard_match("*.example", "example"));
    }
}
