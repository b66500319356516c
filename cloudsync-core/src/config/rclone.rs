//! Importing an rclone config file (`rclone.conf`) into remote sections of our
//! [`Config`](crate::Config).
//!
//! [`RcloneImport::parse`] reads the INI text rclone writes, maps each remote of a type we have
//! a backend for (`local`, `sftp`, `ftp`, `webdav`, `dropbox`, `drive`, `google cloud storage`)
//! to our keys, and lists the options it could not map. Secrets never land in the sections:
//! each becomes an environment-variable reference (`password_env = "CLOUDSYNC_NAS_PASSWORD"`),
//! and its value (rclone's obscured passwords revealed with [`reveal`], OAuth refresh tokens
//! taken out of `token = {json}`) is kept in an [`ImportedSecret`] that the caller either
//! writes to a secrets file ([`RcloneImport::write_secrets_file`], mode 0600) or leaves for the
//! user to provide.
//!
//! The mapping names backend keys (it is a translation of text, like the TOML file itself);
//! it opens nothing and depends on no backend crate.
//!
//! ```
//! use cloudsync_core::rclone::RcloneImport;
//! let import = RcloneImport::parse(
//!     "[nas]\ntype = sftp\nhost = nas.local\nuser = backup\npass = c12rG-gQXpJBLB5IQ4G4d5d_LdkooW0\n",
//! )?;
//! let nas = &import.remotes[0];
//! assert_eq!(nas.section["host"], "nas.local");
//! assert_eq!(nas.section["password_env"], "CLOUDSYNC_NAS_PASSWORD");
//! assert_eq!(nas.secrets[0].value.expose(), "hunter2");
//! assert!(!import.to_toml().contains("hunter2"));
//! # Ok::<(), cloudsync_core::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// The first line of an rclone config encrypted with a configuration password.
pub const ENCRYPTED_MARKER: &str = "RCLONE_ENCRYPT_V0:";

/// rclone's fixed, published key for `rclone obscure` (fs/config/obscure in rclone's source):
/// obscuring hides a password from a glance, it does not protect it.
const OBSCURE_KEY: [u8; 32] = [
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b,
    0xd3, 0x90, 0x19, 0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38,
];

/// AES block size: the obscured form starts with an IV of this many bytes.
const IV_LEN: usize = 16;

/// Reveals a value obscured by `rclone obscure` (the form of `pass` keys in rclone configs):
/// base64url without padding of a 16-byte IV followed by the value encrypted with AES-256-CTR
/// under rclone's fixed key.
///
/// The error never contains the input.
///
/// ```
/// use cloudsync_core::rclone::reveal;
/// assert_eq!(reveal("c12rG-gQXpJBLB5IQ4G4d5d_LdkooW0")?.expose(), "hunter2");
/// assert!(reveal("not obscured!").is_err());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
pub fn reveal(obscured: &str) -> Result<Secret> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("not an rclone-obscured value ({why})"),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(obscured.trim())
        .map_err(|_| bad("not base64url"))?;
    if bytes.len() < IV_LEN {
        return Err(bad("too short"));
    }
    let (iv, cipher) = bytes.split_at(IV_LEN);
    let mut buf = cipher.to_vec();
    if !buf.is_empty() {
        use aws_lc_rs::cipher::{AES_256, DecryptingKey, DecryptionContext, UnboundCipherKey};
        use aws_lc_rs::iv::FixedLength;
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| bad("bad IV"))?;
        let key = UnboundCipherKey::new(&AES_256, &OBSCURE_KEY).map_err(|_| bad("cipher"))?;
        let key = DecryptingKey::ctr(key).map_err(|_| bad("cipher"))?;
        let plain = key
            .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| bad("cannot decrypt"))?;
        let n = plain.len();
        buf.truncate(n);
    }
    String::from_utf8(buf)
        .map(Secret::new)
        .map_err(|_| bad("not UTF-8 once revealed"))
}

/// The places rclone looks for its config file on this system, in its order (rclone's
/// `--config` documentation): `$RCLONE_CONFIG` (the environment form of `--config`), then the
/// first that exists of `$XDG_CONFIG_HOME/rclone/rclone.conf`, `~/.config/rclone/rclone.conf`
/// and `~/.rclone.conf`. (rclone first looks for `rclone.conf` beside its own executable, a
/// "portable" setup we cannot locate; pass that file explicitly.)
pub fn default_config_candidates() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var("RCLONE_CONFIG") {
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    if let Some(x) = var("XDG_CONFIG_HOME") {
        out.push(PathBuf::from(x).join("rclone").join("rclone.conf"));
    }
    if let Some(home) = var("HOME") {
        let home = PathBuf::from(home);
        out.push(home.join(".config").join("rclone").join("rclone.conf"));
        out.push(home.join(".rclone.conf"));
    }
    out
}

/// The rclone config file rclone itself would read (see [`default_config_candidates`]):
/// `$RCLONE_CONFIG` whether it exists or not, else the first candidate that exists.
///
/// Fails with [`ErrorKind::NotFound`] naming the places tried.
pub fn default_config_path() -> Result<PathBuf> {
    let candidates = default_config_candidates();
    if std::env::var_os("RCLONE_CONFIG").is_some_and(|v| !v.is_empty()) {
        return Ok(candidates[0].clone());
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no rclone config file found (tried $RCLONE_CONFIG, {}); name the file",
                    if tried.is_empty() {
                        "and neither HOME nor XDG_CONFIG_HOME is set".to_owned()
                    } else {
                        tried.join(", ")
                    }
                ),
            )
        })
}

/// A secret taken out of an rclone remote; the imported section names it by
/// [`variable`](ImportedSecret::variable).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportedSecret {
    /// Our key that references it (`password_env`).
    pub key: String,
    /// The environment variable the section names (`CLOUDSYNC_NAS_PASSWORD`).
    pub variable: String,
    /// The rclone key it came from (`pass`, `token`).
    pub rclone_key: String,
    /// The value (revealed when rclone stored it obscured).
    pub value: Secret,
}

/// An rclone option with no equivalent here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnmappedOption {
    /// The rclone key.
    pub key: String,
    /// Its value, or `None` when the key holds a secret (never shown).
    pub value: Option<String>,
    /// The line of the rclone file.
    pub line: usize,
}

impl std::fmt::Display for UnmappedOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {v}", self.key),
            None => write!(f, "{} (a secret; value left out)", self.key),
        }
    }
}

/// One rclone remote turned into a section of our config.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ImportedRemote {
    /// Our remote name (rclone's, with characters our names refuse replaced by `_`).
    pub name: String,
    /// The rclone section name.
    pub rclone_name: String,
    /// The rclone `type`.
    pub rclone_type: String,
    /// The section, with its `type`; secrets only as `*_env` references.
    pub section: Map<String, Value>,
    /// The secrets the section references.
    pub secrets: Vec<ImportedSecret>,
    /// The rclone options left out.
    pub unmapped: Vec<UnmappedOption>,
    /// What the user should know about this remote (differences, things to fill in).
    pub notes: Vec<String>,
}

/// An rclone remote that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedRemote {
    /// The rclone section name.
    pub rclone_name: String,
    /// Why.
    pub reason: String,
}

/// The result of reading an rclone config: the remotes imported and those skipped.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RcloneImport {
    /// The imported remotes, in the file's order.
    pub remotes: Vec<ImportedRemote>,
    /// The remotes left out.
    pub skipped: Vec<SkippedRemote>,
}

/// One `[section]` of the INI text, keys in order, with their line numbers.
struct IniSection {
    name: String,
    keys: BTreeMap<String, (String, usize)>,
}

fn syntax(line: usize, why: &str) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("rclone config line {line}: {why}"),
    )
}

/// Reads rclone's INI dialect: `[name]` headers, `key = value` (or `key: value`) lines, `#`
/// and `;` comments; a section given twice is merged and the last value of a key wins, as
/// rclone's reader does. Errors name the line, never its text (it may hold a secret).
fn parse_ini(text: &str) -> Result<Vec<IniSection>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: Vec<IniSection> = Vec::new();
    let mut current: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with(ENCRYPTED_MARKER) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "this rclone config is encrypted (RCLONE_ENCRYPT_V0): remove its configuration \
                 password first (`rclone config`, then `s) Set configuration password`, then \
                 `u) Unencrypt configuration`), or import a decrypted copy",
            ));
        }
        if line.starts_with('[') && line.ends_with(']') {
            let name = line[1..line.len() - 1].trim();
            if name.is_empty() {
                return Err(syntax(n, "empty section name `[]`"));
            }
            current = Some(match sections.iter().position(|s| s.name == name) {
                Some(p) => p,
                None => {
                    sections.push(IniSection {
                        name: name.to_owned(),
                        keys: BTreeMap::new(),
                    });
                    sections.len() - 1
                }
            });
            continue;
        }
        let Some(idx) = current else {
            return Err(syntax(n, "a key before any `[remote]` section"));
        };
        match line.find(['=', ':']) {
            Some(p) if p > 0 => {
                let key = line[..p].trim().to_owned();
                let value = line[p + 1..].trim().to_owned();
                sections[idx].keys.insert(key, (value, n));
            }
            _ => return Err(syntax(n, "expected `[remote]` or `key = value`")),
        }
    }
    Ok(sections)
}

/// Whether an rclone key holds a secret (never shown, even when it is not mapped).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "credentials",
        "key_pem",
        "private",
        "sas_url",
    ]
    .iter()
    .any(|s| k.contains(s))
        || k == "key"
        || k.ends_with("_key")
}

/// Our remote name for an rclone section name: characters a name here cannot hold become `_`.
fn our_name(rclone_name: &str) -> String {
    rclone_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `CLOUDSYNC_<NAME>_<WHAT>` in upper case, `_` for anything else.
fn env_name(remote: &str, what: &str) -> String {
    let up = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("CLOUDSYNC_{}_{}", up(remote), up(what))
}

/// Maps one rclone section, key by key; what no rule takes is listed as unmapped.
struct Mapper<'a> {
    sec: &'a IniSection,
    name: String,
    used: BTreeSet<String>,
    out: Map<String, Value>,
    secrets: Vec<ImportedSecret>,
    notes: Vec<String>,
}

impl<'a> Mapper<'a> {
    fn new(sec: &'a IniSection, name: String, our_type: &str) -> Self {
        let mut out = Map::new();
        out.insert("type".into(), Value::from(our_type));
        let mut used = BTreeSet::new();
        used.insert("type".to_owned());
        Mapper {
            sec,
            name,
            used,
            out,
            secrets: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The value of `key` (marked as consumed), with its line; empty values count as absent,
    /// as rclone treats them.
    fn take(&mut self, key: &str) -> Option<(&'a str, usize)> {
        let (v, line) = self.sec.keys.get(key)?;
        self.used.insert(key.to_owned());
        (!v.is_empty()).then_some((v.as_str(), *line))
    }

    /// The value of `key` without consuming it.
    fn peek(&self, key: &str) -> Option<&'a str> {
        self.sec
            .keys
            .get(key)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn bad(&self, line: usize, key: &str, why: &str) -> Error {
        syntax(
            line,
            &format!("remote {:?} key `{key}`: {why}", self.sec.name),
        )
    }

    fn text(&mut self, key: &str, ours: &str) {
        if let Some((v, _)) = self.take(key) {
            self.out.insert(ours.into(), Value::from(v));
        }
    }

    /// A Go boolean (`strconv.ParseBool`).
    fn flag_value(&self, key: &str, v: &str, line: usize) -> Result<bool> {
        match v {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(self.bad(line, key, "not true or false")),
        }
    }

    fn flag(&mut self, key: &str, ours: &str) -> Result<Option<bool>> {
        let Some((v, line)) = self.take(key) else {
            return Ok(None);
        };
        let b = self.flag_value(key, v, line)?;
        self.out.insert(ours.into(), Value::from(b));
        Ok(Some(b))
    }

    fn number(&mut self, key: &str, ours: &str) -> Result<()> {
        if let Some((v, line)) = self.take(key) {
            let n: u64 = v
                .parse()
                .map_err(|_| self.bad(line, key, "not a whole number"))?;
            self.out.insert(ours.into(), Value::from(n));
        }
        Ok(())
    }

    /// An rclone size (`48Mi`, `10M`, a bare number of KiB).
    fn size(&mut self, key: &str, ours: &str) -> Result<()> {
        if let Some((v, line)) = self.take(key) {
            let n = crate::parse_size(v)
                .map_err(|e| self.bad(line, key, e.message()))?
                .ok_or_else(|| self.bad(line, key, "`off` has no equivalent"))?;
            self.out.insert(ours.into(), Value::from(n));
        }
        Ok(())
    }

    /// A secret: the section gets `ours = "<VARIABLE>"`, the value goes to `secrets`.
    fn secret(&mut self, rclone_key: &str, ours: &str, value: Secret) {
        let what = ours.strip_suffix("_env").unwrap_or(ours);
        let variable = env_name(&self.name, what);
        self.out.insert(ours.into(), Value::from(variable.clone()));
        self.secrets.push(ImportedSecret {
            key: ours.to_owned(),
            variable,
            rclone_key: rclone_key.to_owned(),
            value,
        });
    }

    /// An obscured rclone password.
    fn obscured(&mut self, key: &str, ours: &str) -> Result<()> {
        if let Some((v, line)) = self.take(key) {
            let value = reveal(v).map_err(|e| self.bad(line, key, e.message()))?;
            self.secret(key, ours, value);
        }
        Ok(())
    }

    /// A secret rclone stores as it is.
    fn plain_secret(&mut self, key: &str, ours: &str) {
        if let Some((v, _)) = self.take(key) {
            self.secret(key, ours, Secret::new(v));
        }
    }

    /// rclone's OAuth `token = {"access_token":…,"refresh_token":…}`.
    fn token(&mut self, key: &str) -> Result<Option<OauthToken>> {
        let Some((v, line)) = self.take(key) else {
            return Ok(None);
        };
        serde_json::from_str::<OauthToken>(v)
            .map(Some)
            .map_err(|_| self.bad(line, key, "not an OAuth token in JSON"))
    }

    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    fn finish(self) -> ImportedRemote {
        let unmapped = self
            .sec
            .keys
            .iter()
            .filter(|(k, (v, _))| !self.used.contains(*k) && !v.is_empty())
            .map(|(k, (v, line))| UnmappedOption {
                key: k.clone(),
                value: (!is_secret_key(k)).then(|| v.clone()),
                line: *line,
            })
            .collect();
        ImportedRemote {
            name: self.name,
            rclone_name: self.sec.name.clone(),
            rclone_type: self.sec.keys["type"].0.clone(),
            section: self.out,
            secrets: self.secrets,
            unmapped,
            notes: self.notes,
        }
    }
}

/// The parts of rclone's OAuth token we use.
#[derive(serde::Deserialize)]
struct OauthToken {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    refresh_token: String,
}

fn map_local(m: &mut Mapper<'_>) -> Result<()> {
    // rclone's local remote has no root: `name:/abs` is absolute, `name:rel` relative to the
    // current directory. Here a remote has a root; `/` makes `name:abs/path` mean `/abs/path`.
    m.out.insert("root".into(), Value::from("/"));
    m.note("rooted at `/`: `name:path` is read from `/` (rclone reads a relative path from the current directory)");
    m.flag("copy_links", "follow_symlinks")?;
    Ok(())
}

fn map_sftp(m: &mut Mapper<'_>) -> Result<()> {
    m.text("host", "host");
    m.number("port", "port")?;
    m.text("user", "user");
    m.obscured("pass", "password_env")?;
    m.text("key_file", "key_file");
    m.obscured("key_file_pass", "key_passphrase_env")?;
    if m.peek("known_hosts_file").is_some() {
        m.text("known_hosts_file", "known_hosts");
    } else {
        m.note("host keys are checked against ~/.ssh/known_hosts (rclone checks none without known_hosts_file)");
    }
    m.number("connections", "connections")?;
    // Our shell_hashes runs `md5sum` and `sha1sum` on the server; rclone names the commands.
    let md5 = m.peek("md5sum_command");
    let sha1 = m.peek("sha1sum_command");
    if md5 == Some("md5sum") || sha1 == Some("sha1sum") {
        m.out.insert("shell_hashes".into(), Value::from(true));
        for (key, want) in [("md5sum_command", "md5sum"), ("sha1sum_command", "sha1sum")] {
            if matches!(m.peek(key), Some(v) if v == want || v == "none") {
                m.take(key);
            }
        }
    } else if md5.is_none_or(|v| v == "none") && sha1.is_none_or(|v| v == "none") {
        m.take("md5sum_command");
        m.take("sha1sum_command");
    }
    Ok(())
}

fn map_ftp(m: &mut Mapper<'_>) -> Result<()> {
    m.text("host", "host");
    m.number("port", "port")?;
    m.text("user", "user");
    m.obscured("pass", "password_env")?;
    let implicit = match m.peek("tls") {
        Some(v) => m.flag_value("tls", v, m.sec.keys["tls"].1)?,
        None => false,
    };
    let explicit = match m.peek("explicit_tls") {
        Some(v) => m.flag_value("explicit_tls", v, m.sec.keys["explicit_tls"].1)?,
        None => false,
    };
    match (implicit, explicit) {
        (true, true) => {
            m.note("both `tls` and `explicit_tls` are set (rclone refuses this): set `tls` here")
        }
        (true, false) | (false, true) => {
            m.take("tls");
            m.take("explicit_tls");
            let mode = if implicit { "implicit" } else { "explicit" };
            m.out.insert("tls".into(), Value::from(mode));
        }
        (false, false) => {
            m.take("tls");
            m.take("explicit_tls");
        }
    }
    m.flag("no_check_certificate", "no_check_certificate")?;
    m.flag("disable_epsv", "disable_epsv")?;
    m.flag("disable_mlsd", "disable_mlsd")?;
    // rclone's concurrency is its cap on FTP connections (0: none); ours is always capped.
    if m.peek("concurrency").is_some_and(|v| v != "0") {
        m.number("concurrency", "connections")?;
    } else if m.peek("concurrency") == Some("0") {
        m.take("concurrency");
    }
    Ok(())
}

fn map_webdav(m: &mut Mapper<'_>) -> Result<()> {
    m.text("url", "url");
    match m.peek("vendor") {
        Some(v @ ("nextcloud" | "owncloud")) => {
            m.take("vendor");
            m.out.insert("vendor".into(), Value::from(v));
        }
        Some("other") | None => {
            m.take("vendor");
        }
        Some(_) => {
            m.note("this vendor has no equivalent: the remote is a generic WebDAV server here")
        }
    }
    m.text("user", "user");
    m.obscured("pass", "password_env")?;
    m.plain_secret("bearer_token", "bearer_token_env");
    if m.out.get("vendor").is_some_and(|v| v == "nextcloud")
        && m.peek("nextcloud_chunk_size") != Some("0")
    {
        m.size("nextcloud_chunk_size", "chunk_size")?;
    }
    Ok(())
}

/// rclone's built-in OAuth clients are rclone's: a token it issued refreshes only with them.
const RCLONE_CLIENT_NOTE: &str = "no client_id: the token was issued to rclone's own OAuth app, \
    which only rclone can refresh; authorize again with your own app";

fn map_dropbox(m: &mut Mapper<'_>) -> Result<()> {
    let has_client = m.peek("client_id").is_some();
    m.text("client_id", "app_key");
    m.plain_secret("client_secret", "app_secret_env");
    if let Some(t) = m.token("token")? {
        if !t.refresh_token.is_empty() {
            m.secret("token", "refresh_token_env", Secret::new(t.refresh_token));
        } else if !t.access_token.is_empty() {
            // A long-lived token of the days before refresh tokens.
            m.secret("token", "access_token_env", Secret::new(t.access_token));
        }
        if !has_client {
            m.out.insert("app_key".into(), Value::from(""));
            m.note(RCLONE_CLIENT_NOTE);
        }
    }
    m.size("chunk_size", "chunk_size")?;
    Ok(())
}

fn map_drive(m: &mut Mapper<'_>) -> Result<()> {
    let has_client = m.peek("client_id").is_some();
    m.text("client_id", "client_id");
    m.plain_secret("client_secret", "client_secret_env");
    if let Some(t) = m.token("token")? {
        if t.refresh_token.is_empty() {
            // Drive here needs a refresh token: the key goes back to the unmapped list.
            m.used.remove("token");
        } else {
            m.secret("token", "refresh_token_env", Secret::new(t.refresh_token));
            if !has_client {
                m.note(RCLONE_CLIENT_NOTE);
            }
        }
    }
    m.text("service_account_file", "service_account_file");
    m.text("root_folder_id", "root_folder_id");
    m.text("team_drive", "drive_id");
    m.flag("use_trash", "use_trash")?;
    m.size("chunk_size", "chunk_size")?;
    Ok(())
}

fn map_gcs(m: &mut Mapper<'_>) -> Result<()> {
    m.text("service_account_file", "service_account_file");
    m.flag("anonymous", "anonymous")?;
    m.text("endpoint", "base_url");
    // env_auth: credentials from the environment, which is what a remote without a key file
    // does here (Application Default Credentials).
    if let Some(v) = m.peek("env_auth") {
        let line = m.sec.keys["env_auth"].1;
        if m.flag_value("env_auth", v, line)? && m.peek("service_account_file").is_none() {
            m.take("env_auth");
        }
    }
    m.note("rclone names the bucket in the path (`name:bucket/dir`); here set `bucket` (and `prefix`) in the section");
    Ok(())
}

impl RcloneImport {
    /// Reads the text of an rclone config file.
    ///
    /// Fails with [`ErrorKind::ConfigInvalid`] on an encrypted config ([`ENCRYPTED_MARKER`]),
    /// a line that is neither a section nor `key = value` (the error names the line, never its
    /// text), a password that is not rclone-obscured or an unreadable token.
    pub fn parse(text: &str) -> Result<Self> {
        let mut import = RcloneImport::default();
        let mut names = BTreeSet::new();
        let mut variables = BTreeSet::new();
        for sec in parse_ini(text)? {
            let skip = |reason: String| SkippedRemote {
                rclone_name: sec.name.clone(),
                reason,
            };
            let Some((rtype, _)) = sec.keys.get("type").filter(|(t, _)| !t.is_empty()) else {
                import.skipped.push(skip("no `type`".into()));
                continue;
            };
            let ours = match rtype.as_str() {
                "local" => "local",
                "sftp" => "sftp",
                "ftp" => "ftp",
                "webdav" => "webdav",
                "dropbox" => "dropbox",
                "drive" => "gdrive",
                "google cloud storage" | "gcs" => "gcs",
                other => {
                    import
                        .skipped
                        .push(skip(format!("type {other:?} has no backend here")));
                    continue;
                }
            };
            let name = our_name(&sec.name);
            if !names.insert(name.clone()) {
                import.skipped.push(skip(format!(
                    "its name becomes {name:?} here, which another remote already has"
                )));
                continue;
            }
            let mut m = Mapper::new(&sec, name.clone(), ours);
            if name != sec.name {
                m.note(format!("renamed to {name:?}: a remote name here is made of letters, digits, `_` and `-`"));
            }
            match ours {
                "local" => map_local(&mut m)?,
                "sftp" => map_sftp(&mut m)?,
                "ftp" => map_ftp(&mut m)?,
                "webdav" => map_webdav(&mut m)?,
                "dropbox" => map_dropbox(&mut m)?,
                "gdrive" => map_drive(&mut m)?,
                _ => map_gcs(&mut m)?,
            }
            let mut remote = m.finish();
            // Two remotes whose names differ only in punctuation would share variables.
            for s in &mut remote.secrets {
                let base = s.variable.clone();
                let mut n = 2;
                while !variables.insert(s.variable.clone()) {
                    s.variable = format!("{base}_{n}");
                    n += 1;
                }
                remote
                    .section
                    .insert(s.key.clone(), Value::from(s.variable.clone()));
            }
            import.remotes.push(remote);
        }
        Ok(import)
    }

    /// Reads an rclone config file (see [`RcloneImport::parse`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot read rclone config {}: {e}", path.display()),
            )
            .with_source(e)
        })?;
        Self::parse(&text)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))
    }

    /// The imported remotes as a [`Config`](crate::Config).
    pub fn config(&self) -> crate::Config {
        let mut cfg = crate::Config::default();
        for r in &self.remotes {
            cfg.insert(r.name.clone(), Value::Object(r.section.clone()));
        }
        cfg
    }

    /// Every secret of every imported remote.
    pub fn secrets(&self) -> impl Iterator<Item = &ImportedSecret> {
        self.remotes.iter().flat_map(|r| r.secrets.iter())
    }

    /// The `[remotes.*]` sections as TOML, each preceded by comments naming its rclone remote,
    /// the options left out (secret values never shown) and the notes; skipped remotes are
    /// listed as comments. Holds no secret.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for r in &self.remotes {
            let _ = writeln!(
                out,
                "# rclone remote [{}] (type {})",
                comment_safe(&r.rclone_name),
                r.rclone_type
            );
            for u in &r.unmapped {
                let _ = writeln!(out, "# not mapped: {}", comment_safe(&u.to_string()));
            }
            for n in &r.notes {
                let _ = writeln!(out, "# note: {n}");
            }
            // A section is JSON from strings, booleans and integers: it converts. Should one
            // ever not, the output says so where the section would be, rather than leave it out.
            let written = toml::Value::try_from(&r.section).and_then(|t| {
                let mut remotes = toml::Table::new();
                remotes.insert(r.name.clone(), t);
                let mut top = toml::Table::new();
                top.insert("remotes".into(), toml::Value::Table(remotes));
                toml::to_string(&top)
            });
            match written {
                Ok(text) => out.push_str(&text),
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "# error: remote {} could not be written as TOML: {}",
                        comment_safe(&r.name),
                        comment_safe(&e.to_string())
                    );
                }
            }
            out.push('\n');
        }
        for s in &self.skipped {
            let _ = writeln!(
                out,
                "# rclone remote [{}] not imported: {}",
                comment_safe(&s.rclone_name),
                s.reason
            );
        }
        out
    }

    /// What the user should read after an import: one line per option left out, note and
    /// skipped remote. Holds no secret.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.remotes {
            for u in &r.unmapped {
                out.push(format!(
                    "remote {}: rclone option not mapped (line {}): {}",
                    r.name, u.line, u
                ));
            }
            for n in &r.notes {
                out.push(format!("remote {}: {n}", r.name));
            }
        }
        for s in &self.skipped {
            out.push(format!(
                "rclone remote [{}] not imported: {}",
                s.rclone_name, s.reason
            ));
        }
        out
    }

    /// The secrets as a file of `VARIABLE='value'` lines, for `set -a; . FILE; set +a` in a
    /// shell (or systemd's `EnvironmentFile=` when no value holds a `'`). The one place the
    /// secrets are written out.
    pub fn secrets_file_text(&self) -> String {
        let mut out = String::from(
            "# Secrets imported from an rclone config, referenced by the `*_env` keys of the\n\
             # cloudsync config. Load them with: set -a; . ./THIS_FILE; set +a\n",
        );
        for s in self.secrets() {
            let quoted = s.value.expose().replace('\'', "'\\''");
            let _ = writeln!(out, "{}='{quoted}'", s.variable);
        }
        out
    }

    /// Writes [`RcloneImport::secrets_file_text`] to `path`, readable by its owner only (mode
    /// 0600 on Unix, set before any secret is written, also when the file existed).
    pub fn write_secrets_file(&self, path: &Path) -> Result<()> {
        use std::io::Write as _;
        let fail = |e: std::io::Error| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot write secrets file {}: {e}", path.display()),
            )
            .with_source(e)
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
        f.write_all(self.secrets_file_text().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(fail)
    }
}

/// A name or value inside a `#` comment: one line.
fn comment_safe(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reveal_matches_rclone_obscure() {
        // Produced by `rclone obscure` (rclone 1.60).
        assert_eq!(
            reveal("c12rG-gQXpJBLB5IQ4G4d5d_LdkooW0").unwrap().expose(),
            "hunter2"
        );
        assert_eq!(reveal("2rGO0zxEwSwto7lSf-AKWg").unwrap().expose(), "");
        assert_eq!(
            reveal("RGUk-PXnO6QbrO24TMOmTwCSC1BsAXmsSw")
                .unwrap()
                .expose(),
            "ünï €"
        );
        for bad in ["hunter2!", "c12r", "c12rG-gQXpJBLB5IQ4G4d5d_LdkooW0=="] {
            let e = reveal(bad).unwrap_err();
            assert!(!e.chain().contains(bad), "{e}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line_not_its_text() {
        let e = RcloneImport::parse("# c\n[a]\ntype = local\nhunter2 secret\n").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.message().contains("line 4"), "{e}");
        assert!(!e.message().contains("hunter2"), "{e}");
        let e = RcloneImport::parse("pass = x\n[a]\n").unwrap_err();
        assert!(e.message().contains("line 1"), "{e}");
        let e = RcloneImport::parse("[a]\n[ ]\n").unwrap_err();
        assert!(e.message().contains("line 2"), "{e}");
        let e = RcloneImport::parse("[a]\ntype = sftp\npass = nope!\n").unwrap_err();
        assert!(
            e.message().contains("line 3") && e.message().contains("`pass`"),
            "{e}"
        );
        assert!(!e.message().contains("nope!"), "{e}");
        let e =
            RcloneImport::parse("[a]\ntype = drive\ntoken = {\"refresh_token\":\n").unwrap_err();
        assert!(e.message().contains("line 3"), "{e}");
        let e = RcloneImport::parse(
            "# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nabc\n",
        )
        .unwrap_err();
        assert!(e.message().contains("encrypted"), "{e}");
    }

    #[test]
    fn names_types_and_merges() {
        let text = "[my nas]\ntype = local\n[s3x]\ntype = s3\n[none]\nuser = x\n\
                    [my nas]\ncopy_links = true\n[my.nas]\ntype = local\n";
        let i = RcloneImport::parse(text).unwrap();
        assert_eq!(i.remotes.len(), 1);
        let r = &i.remotes[0];
        assert_eq!(r.name, "my_nas");
        assert_eq!(r.section["follow_symlinks"], true);
        let skipped: Vec<&str> = i.skipped.iter().map(|s| s.rclone_name.as_str()).collect();
        assert_eq!(skipped, ["s3x", "none", "my.nas"]);
        assert!(crate::Config::from_toml_str(&i.to_toml()).is_ok());
    }

    #[test]
    fn unmapped_secrets_are_named_not_shown() {
        let text = "[n]\ntype = sftp\nhost = h\nkey_pem = PRIVATE-KEY-TEXT\nshell_type = unix\n";
        let i = RcloneImport::parse(text).unwrap();
        let shown = format!("{}\n{}", i.to_toml(), i.messages().join("\n"));
        assert!(
            shown.contains("key_pem (a secret; value left out)"),
            "{shown}"
        );
        assert!(shown.contains("shell_type = unix"), "{shown}");
        assert!(!shown.contains("PRIVATE-KEY-TEXT"), "{shown}");
    }

    #[test]
    fn secrets_file_quotes_for_the_shell() {
        let text = "[n]\ntype = webdav\nurl = http://h/\nbearer_token = it's\n";
        let i = RcloneImport::parse(text).unwrap();
        assert!(
            i.secrets_file_text()
                .contains("CLOUDSYNC_N_BEARER_TOKEN='it'\\''s'\n")
        );
    }

    #[test]
    fn options_of_newer_and_other_setups() {
        let text = "[f]\ntype = ftp\nhost = h\ntls = true\nconcurrency = 0\n\
                    [n]\ntype = webdav\nurl = https://h/\nvendor = nextcloud\nnextcloud_chunk_size = 20Mi\n\
                    [s]\ntype = webdav\nurl = https://h/\nvendor = sharepoint\n\
                    [d]\ntype = dropbox\ntoken = {\"access_token\":\"LONG\",\"expiry\":\"0001-01-01T00:00:00Z\"}\n\
                    [g]\ntype = google cloud storage\nenv_auth = true\n";
        let i = RcloneImport::parse(text).unwrap();
        let by = |n: &str| i.remotes.iter().find(|r| r.name == n).unwrap();
        assert_eq!(by("f").section["tls"], "implicit");
        assert!(by("f").section.get("connections").is_none());
        assert!(by("f").unmapped.is_empty(), "{:?}", by("f").unmapped);
        assert_eq!(by("n").section["chunk_size"], 20 << 20);
        assert!(by("s").section.get("vendor").is_none());
        assert_eq!(by("s").unmapped[0].key, "vendor");
        let d = by("d");
        assert_eq!(d.section["access_token_env"], "CLOUDSYNC_D_ACCESS_TOKEN");
        assert_eq!(d.secrets[0].value.expose(), "LONG");
        assert!(d.notes.iter().any(|n| n.contains("rclone's own OAuth app")));
        assert!(by("g").unmapped.is_empty(), "{:?}", by("g").unmapped);
        let cfg = crate::Config::from_toml_str(&i.to_toml()).unwrap();
        assert_eq!(cfg, i.config());
    }
}
