//! The last line of defence of DESIGN.md §4 rule 8 on the command line: passwords given in URL
//! arguments (`ftp://me:PASSWORD@host/x`, `?password=...`) are replaced by `***` in every line
//! this program writes to stderr, whatever produced the text (our messages, a backend's error,
//! a dependency's log line). The places that show a location also pass it through
//! [`cloudsync::redact_location`] first; this catches what they cannot know about.

use std::io::Write;
use std::sync::OnceLock;

static SECRETS: OnceLock<Vec<String>> = OnceLock::new();

/// Remembers the secrets found in the command-line arguments (as written and percent-decoded):
/// URL passwords and the values of the query keys [`cloudsync::redact_location`] hides.
pub fn init(args: impl Iterator<Item = String>) {
    let mut found = Vec::new();
    for arg in args.filter(|a| cloudsync::location_has_secret(a)) {
        let Some((_, rest)) = arg.split_once("://") else {
            continue;
        };
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                found.push(password.to_owned());
            }
        }
        let query = rest.split_once('?').map_or("", |(_, q)| q);
        let query = query.split('#').next().unwrap_or("");
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if cloudsync::location_has_secret(&format!("x://h/?{k}=v")) {
                    found.push(v.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .filter_map(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
        .map(|s| s.into_owned())
        .collect();
    found.extend(decoded);
    // Very short values would mask unrelated text; they are still hidden where a location is
    // shown (redact_location).
    found.retain(|s| s.len() >= 3);
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    let _ = SECRETS.set(found);
}

/// `text` with every remembered secret replaced by `***`.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_owned();
    for s in SECRETS.get().map(Vec::as_slice).unwrap_or_default() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), cloudsync::REDACTED);
        }
    }
    out
}

/// stderr through [`scrub`], for the log subscriber (it writes one event per call).
pub struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
