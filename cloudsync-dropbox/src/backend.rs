//! [`DropboxBackend`]: the builder and the [`Remote`] implementation, and the factory that
//! opens `dropbox` remotes from configuration.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind,
    Location, MultiHasher, QueryKind, Remote, RemotePath, Result, Usage, WriteMeta, parse_config,
};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::config::{DEFAULT_API_URL, DropboxConfig};
use crate::core::{DropboxCore, Metadata, tags_of};
use crate::{deleter, lister, names, reader, writer};

/// A Dropbox account (or a folder in it) as a [`Remote`].
///
/// ```no_run
/// # async fn demo() -> cloudsync_core::Result<()> {
/// use cloudsync_core::Remote;
/// use cloudsync_dropbox::{DropboxBackend, DropboxConfig};
///
/// let remote = DropboxBackend::new(
///     DropboxConfig::new("my-app-key")
///         .with_refresh_token_env("DROPBOX_REFRESH_TOKEN")
///         .with_root("Backups"),
/// )?;
/// assert!(remote.capabilities().case_insensitive);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DropboxBackend {
    core: Arc<DropboxCore>,
    caps: Capabilities,
    location: Location,
}

impl DropboxBackend {
    /// Validates `config` (reading secrets from the environment or the token file) and builds
    /// the remote. No request is sent until the remote is used.
    pub fn new(config: DropboxConfig) -> Result<Self> {
        let v = config.validate()?;
        let location = location(&v.api_url, &v.root);
        let core = DropboxCore::new(v)?;
        let caps = Capabilities {
            hashes: vec![HashKind::Dropbox],
            modtime_precision: Some(Duration::from_secs(1)),
            write_modtime: true,
            set_modtime: false,
            // files.stone, WriteMode: "If the target path refers to a file with identical
            // contents, nothing gets written" — client_modified included.
            identical_upload_keeps_modtime: true,
            copy: true,
            rename: true,
            list_recursive: true,
            purge: true,
            usage: true,
            case_insensitive: true,
            dirs: true,
            max_name_len: Some(255),
            ..Default::default()
        };
        Ok(DropboxBackend {
            core: Arc::new(core),
            caps,
            location,
        })
    }

    async fn metadata(&self, path: &RemotePath) -> Result<Metadata> {
        let v = self
            .core
            .rpc(
                "files/get_metadata",
                &json!({ "path": self.core.dbx_path(path) }),
            )
            .await
            .map_err(|e| e.with_path(path))?;
        Metadata::from_value(v, "files/get_metadata")
    }

    /// One `move_v2`; the moved entry, named `to`.
    async fn move_once(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let arg = json!({
            "from_path": self.core.dbx_path(from),
            "to_path": self.core.dbx_path(to),
            "autorename": false,
        });
        let v = self
            .core
            .rpc("files/move_v2", &arg)
            .await
            .map_err(|e| e.with_path(from))?;
        Metadata::from_value(v.get("metadata").cloned().unwrap_or(v), "files/move_v2")?
            .to_entry(to.clone())
    }

    /// Whether something is at `path`: `Some(true)`/`Some(false)`, `None` when the look failed.
    async fn exists(&self, path: &RemotePath) -> Option<bool> {
        match self.metadata(path).await {
            Ok(_) => Some(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }

    /// A move that took effect despite an error (a lost answer) is the entry at `to`: the
    /// source is gone and the target is there.
    async fn moved_anyway(&self, from: &RemotePath, to: &RemotePath) -> Option<Entry> {
        if self.exists(from).await != Some(false) {
            return None;
        }
        self.metadata(to).await.ok()?.to_entry(to.clone()).ok()
    }

    /// A rename that changes only the case of the name. The service refuses it (files.stone,
    /// route move:2: "Note that we do not currently support case-only renaming."), so it is
    /// two moves through a temporary name beside the file. The temporary name is not one of
    /// the engine's upload temporaries, so a crash between the two moves leaves an ordinary
    /// file (never one a later sync would clean up as a leftover). If the second move fails,
    /// the file is moved back; the file is never deleted.
    async fn rename_case(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let parent = to.parent().unwrap_or_else(RemotePath::root);
        let name = to.name();
        let mut cut = name.len().min(200);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let tmp_name = format!("{}.cloudsync-case-{:08x}", &name[..cut], fastrand::u32(..));
        let tmp = parent.join(&tmp_name)?;
        if let Err(e) = self.move_once(from, &tmp).await {
            if self.moved_anyway(from, &tmp).await.is_none() {
                return Err(e.with_operation("rename (case only)"));
            }
        }
        let e = match self.move_once(&tmp, to).await {
            Ok(entry) => return Ok(entry),
            Err(e) => e,
        };
        if let Some(entry) = self.moved_anyway(&tmp, to).await {
            return Ok(entry);
        }
        // Put the file back under its old name.
        let back = match self.move_once(&tmp, from).await {
            Ok(_) => Ok(()),
            Err(b) => match self.moved_anyway(&tmp, from).await {
                Some(_) => Ok(()),
                None => Err(b),
            },
        };
        match back {
            Ok(()) => Err(e.with_operation("rename (case only)")),
            Err(b) => {
                tracing::error!(
                    remote = %self.core.describe, from = %from, tmp = %tmp, error = %b,
                    "case-only rename: the file could not be moved back and is under a \
                     temporary name"
                );
                Err(Error::new(
                    e.kind(),
                    format!(
                        "case-only rename failed half way: the file is now {tmp} ({e}; \
                         moving it back failed: {b})"
                    ),
                )
                .with_operation("rename (case only)")
                .with_path(from)
                .set_temporary(e.is_retryable()))
            }
        }
    }

    /// `copy_v2` / `move_v2`, replacing a file (never a folder) already at `to`.
    async fn relocate(
        &self,
        endpoint: &'static str,
        from: &RemotePath,
        to: &RemotePath,
    ) -> Result<Entry> {
        let op = if endpoint == "files/copy_v2" {
            "copy"
        } else {
            "rename"
        };
        names::check(to, op)?;
        let (src, dst) = (self.core.dbx_path(from), self.core.dbx_path(to));
        let same = src.to_lowercase() == dst.to_lowercase();
        if same && endpoint == "files/copy_v2" {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "source and target are the same file (names differ only by case)",
            )
            .with_operation("copy")
            .with_path(to));
        }
        if same {
            if src == dst {
                return self.stat(to).await;
            }
            return self.rename_case(from, to).await;
        }
        let arg = json!({ "from_path": src, "to_path": dst, "autorename": false });
        let mut replaced = false;
        loop {
            match self.core.rpc(endpoint, &arg).await {
                Ok(v) => {
                    let m =
                        Metadata::from_value(v.get("metadata").cloned().unwrap_or(v), endpoint)?;
                    return m.to_entry(to.clone());
                }
                Err(e) => {
                    let tags = tags_of(&e);
                    let target_exists = tags.first().is_some_and(|t| t == "to")
                        && tags.iter().any(|t| t == "conflict");
                    if !target_exists || replaced || same {
                        return Err(e.with_path(from));
                    }
                    let m = self.metadata(to).await?;
                    if m.is_folder() {
                        return Err(Error::new(ErrorKind::Conflict, "the target is a directory")
                            .with_operation(endpoint)
                            .with_path(to));
                    }
                    let mut del = json!({ "path": dst });
                    if let Some(rev) = m.rev {
                        del["parent_rev"] = Value::String(rev);
                    }
                    self.core
                        .rpc("files/delete_v2", &del)
                        .await
                        .map_err(|e| e.with_path(to))?;
                    replaced = true;
                }
            }
        }
    }
}

#[async_trait]
impl Remote for DropboxBackend {
    fn describe(&self) -> String {
        self.core.describe.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.location.clone())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir, false).await
    }

    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir, true).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if path.is_root() && self.core.root.is_empty() {
            // The root of a Dropbox has no metadata.
            return Ok(Entry::dir(path.clone()));
        }
        self.metadata(path).await?.to_entry(path.clone())
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        if path.is_root() {
            return Err(
                Error::new(ErrorKind::Conflict, "cannot write the root").with_operation("write")
            );
        }
        names::check(path, "write")?;
        writer::write(&self.core, path, body, meta).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        if dir.is_root() && self.core.root.is_empty() {
            return Ok(());
        }
        names::check(dir, "mkdir")?;
        let arg = json!({ "path": self.core.dbx_path(dir), "autorename": false });
        match self.core.rpc("files/create_folder_v2", &arg).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let tags = tags_of(&e);
                let exists_as_folder = tags.iter().any(|t| t == "conflict")
                    && tags.last().is_some_and(|t| t == "folder");
                if exists_as_folder {
                    Ok(())
                } else if tags.iter().any(|t| t == "conflict") {
                    Err(Error::new(ErrorKind::Conflict, "a file is in the way")
                        .with_operation("mkdir")
                        .with_path(dir)
                        .with_source(e))
                } else {
                    Err(e.with_path(dir))
                }
            }
        }
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path).await
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.relocate("files/copy_v2", from, to).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.relocate("files/move_v2", from, to).await
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        if kind == HashKind::Dropbox {
            let e = self.stat(path).await?;
            if let Some(h) = e.hashes.get(kind) {
                return Ok(h.to_owned());
            }
            if e.is_dir() {
                return Err(Error::new(ErrorKind::Conflict, "is a directory").with_path(path));
            }
        }
        let mut body = self.read(path, None).await?;
        let mut h = MultiHasher::new(&[kind]);
        while let Some(chunk) = body.try_next().await? {
            h.update(&chunk);
        }
        h.finish()
            .get(kind)
            .map(str::to_owned)
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "hasher produced no value"))
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir).await
    }

    async fn usage(&self) -> Result<Usage> {
        let v = self.core.rpc("users/get_space_usage", &Value::Null).await?;
        let used = v.get("used").and_then(Value::as_u64);
        // Individual accounts: `allocated`; team space: the team's allocation and use.
        let alloc = v.get("allocation");
        let total = alloc
            .and_then(|a| a.get("allocated"))
            .and_then(Value::as_u64);
        let team_used = alloc.and_then(|a| a.get("used")).and_then(Value::as_u64);
        let free = match (total, team_used.or(used)) {
            (Some(t), Some(u)) => Some(t.saturating_sub(u)),
            _ => None,
        };
        Ok(Usage {
            total,
            used,
            free,
            trashed: None,
        })
    }

    async fn cleanup(&self) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "Dropbox has no API to empty the trash of personal accounts: deleted files stay \
             restorable until the service purges them (30 days on Basic and Plus plans)",
        )
        .with_operation("cleanup")
        .with_remote(self.describe()))
    }
}

/// Where the root folder is: the space `dropbox` (plus the API endpoint's host and port when
/// it is not Dropbox's own, as for an emulator) and the root in lower case, because Dropbox
/// paths ignore case.
///
/// Nothing in the config tells two accounts apart without a request: the app key is shared by
/// every account of an app, and token files and variable names are only names (two of them
/// may hold one account's token, and splitting those into two places would miss a real
/// overlap). So two remotes on different accounts with overlapping roots are judged to be one
/// place: a sync between them is refused, never run over itself.
fn location(api_url: &str, root: &str) -> Location {
    let mut space = "dropbox".to_owned();
    if api_url.trim_end_matches('/') != DEFAULT_API_URL {
        if let Ok(u) = url::Url::parse(api_url) {
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let port = u.port_or_known_default().unwrap_or(0);
            space.push_str(&format!("@{host}:{port}"));
        }
    }
    Location::new(space, &root.to_lowercase())
}

/// Opens `type = "dropbox"` remotes and `dropbox://folder/sub?app_key=…` URLs.
///
/// URL query keys: `app_key`, `app_secret_env`, `refresh_token_env`, `token_file`,
/// `access_token_env`, `chunk_size`, `list_limit`, `batch_size`, `batch_timeout_ms`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropboxFactory;

#[async_trait]
impl BackendFactory for DropboxFactory {
    fn type_name(&self) -> &'static str {
        crate::TYPE_NAME
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["dropbox"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let mut root = url.host_str().unwrap_or("").to_owned();
        root.push_str(url.path());
        let root = percent_encoding_decode(&root);
        let mut cfg = serde_json::Map::new();
        cfg.insert(
            "root".into(),
            Value::String(root.trim_matches('/').to_owned()),
        );
        let text = QueryKind::Text;
        let number = QueryKind::Number;
        cloudsync_core::query_to_config(
            "dropbox",
            url,
            &[
                ("app_key", text),
                ("app_secret_env", text),
                ("refresh_token_env", text),
                ("token_file", text),
                ("access_token_env", text),
                ("chunk_size", number),
                ("list_limit", number),
                ("batch_size", number),
                ("batch_timeout_ms", number),
            ],
            &mut cfg,
        )?;
        Ok(Value::Object(cfg))
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        &["app_secret", "refresh_token", "access_token"]
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: DropboxConfig = parse_config(crate::TYPE_NAME, config)?;
        Ok(Arc::new(DropboxBackend::new(cfg)?))
    }
}

/// Decodes `%XX` escapes of a URL's host and path.
fn percent_encoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_configs() {
        let u = url::Url::parse(
            "dropbox://Backups/home%20a?app_key=k&refresh_token_env=RT&chunk_size=8388608",
        )
        .unwrap();
        let v = DropboxFactory.config_from_url(&u).unwrap();
        assert_eq!(v["root"], "Backups/home a");
        assert_eq!(v["app_key"], "k");
        assert_eq!(v["refresh_token_env"], "RT");
        assert_eq!(v["chunk_size"], 8388608);
        let u = url::Url::parse("dropbox://x?colour=red").unwrap();
        assert!(DropboxFactory.config_from_url(&u).is_err());
    }

    #[tokio::test]
    async fn factory_rejects_unknown_keys() {
        let e = DropboxFactory
            .open(json!({"app_key": "k", "refresh_token": "r", "colour": "red"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[cfg(feature = "emulator")]
    #[tokio::test]
    async fn missing_root_lists_as_not_found() {
        let emu = crate::emulator::Emulator::start().unwrap();
        let b = DropboxBackend::new(emu.config().with_root("/no/such/folder")).unwrap();
        let e = b.list(&RemotePath::root()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn location_ignores_case_and_secrets_and_keeps_endpoints_apart() {
        let loc = |cfg: DropboxConfig| DropboxBackend::new(cfg).unwrap().location();
        let base = || DropboxConfig::new("key").with_refresh_token("hunter2");
        let a = loc(base().with_root("/Backups/Home/"));
        assert!(a.is_some());
        assert_eq!(a, loc(base().with_root("backups/home")));
        assert_eq!(
            a,
            loc(DropboxConfig::new("other-app")
                .with_access_token("t2")
                .with_root("BACKUPS/home"))
        );
        let whole = loc(base()).unwrap();
        assert!(whole.contains(a.as_ref().unwrap()));
        assert_ne!(a, loc(base().with_root("/Backups/Home2")));
        let emulated = base().with_root("/Backups/Home");
        let emulated = DropboxConfig {
            api_url: "http://127.0.0.1:9000".into(),
            ..emulated
        };
        assert_ne!(a, loc(emulated));
        assert!(!a.unwrap().to_string().contains("hunter2"));
    }

    #[test]
    fn debug_and_describe_have_no_secrets() {
        let b = DropboxBackend::new(
            DropboxConfig::new("key")
                .with_refresh_token("hunter2-refresh")
                .with_access_token("hunter2-access")
                .with_root("/Photos/"),
        )
        .unwrap();
        assert_eq!(b.describe(), "dropbox://Photos");
        assert!(!format!("{b:?}").contains("hunter2"), "{b:?}");
    }

    #[tokio::test]
    async fn cleanup_says_why() {
        let b = DropboxBackend::new(DropboxConfig::new("k").with_refresh_token("r")).unwrap();
        let e = b.cleanup().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("trash"), "{e}");
    }
}
