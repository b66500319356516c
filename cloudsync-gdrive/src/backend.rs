//! [`GdriveBackend`]: the builder and the [`Remote`] implementation, and [`GdriveFactory`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind,
    Location, Remote, RemotePath, Result, Usage, WriteMeta, parse_config,
};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::{DEFAULT_API_URL, GdriveConfig};
use crate::core::{DriveCore, format_time, name_to_drive};
use crate::{deleter, lister, reader, writer};

/// A Google Drive (My Drive, a folder of it, or a shared drive) as a [`Remote`].
///
/// ```no_run
/// # async fn demo() -> cloudsync_core::Result<()> {
/// use cloudsync_core::Remote;
/// use cloudsync_gdrive::{GdriveBackend, GdriveConfig};
///
/// // The refresh token is read from the environment variable GDRIVE_REFRESH_TOKEN.
/// let remote = GdriveBackend::new(GdriveConfig::oauth(
///     "123.apps.googleusercontent.com",
///     "GDRIVE_REFRESH_TOKEN",
/// ))?;
/// assert!(remote.capabilities().write_modtime);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GdriveBackend {
    core: Arc<DriveCore>,
    caps: Capabilities,
    name: String,
    location: Location,
}

impl GdriveBackend {
    /// Validates `config` (reading secrets) and builds the remote. No request is sent until
    /// the remote is used.
    pub fn new(config: GdriveConfig) -> Result<Self> {
        let v = config.validate()?;
        let name = match (&v.drive_id, v.root_id.as_str()) {
            (Some(d), root) if root != d => format!("gdrive://{d}/{root}"),
            (Some(d), _) => format!("gdrive://{d}"),
            (None, "root") => "gdrive://".to_owned(),
            (None, root) => format!("gdrive://{root}"),
        };
        let location = location(v.drive_id.as_deref(), &v.root_id, &v.api_url);
        let core = DriveCore::new(v)?;
        Ok(GdriveBackend {
            location,
            core: Arc::new(core),
            caps: Capabilities {
                hashes: vec![HashKind::Md5],
                modtime_precision: Some(Duration::from_millis(1)),
                write_modtime: true,
                set_modtime: true,
                copy: true,
                rename: true,
                purge: true,
                cleanup: true,
                usage: true,
                dirs: true,
                ..Default::default()
            },
            name,
        })
    }

    fn ctx(&self, e: Error, op: &'static str, path: &RemotePath) -> Error {
        e.with_operation(op).with_remote(&self.name).with_path(path)
    }

    async fn file(&self, path: &RemotePath, op: &'static str) -> Result<crate::core::DriveFile> {
        match self.core.lookup(path).await {
            Ok(Some(f)) if f.is_folder() => Err(self.ctx(
                Error::new(ErrorKind::Conflict, "is a folder, not a file"),
                op,
                path,
            )),
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(self.ctx(Error::new(ErrorKind::NotFound, "no such file"), op, path)),
            Err(e) => Err(self.ctx(e, op, path)),
        }
    }

    /// The folder id of `to`'s parent (created if needed) and the id of the file already at
    /// `to`, which a copy or move replaces. The old file is removed only after the new one is
    /// in place, so a failure never loses it.
    async fn target(&self, to: &RemotePath, op: &'static str) -> Result<(String, Option<String>)> {
        let parent = to.parent().ok_or_else(|| {
            self.ctx(
                Error::new(ErrorKind::InvalidInput, "cannot replace the root"),
                op,
                to,
            )
        })?;
        let pid = self
            .core
            .mkdir_all(&parent)
            .await
            .map_err(|e| self.ctx(e, op, to))?;
        match self
            .core
            .child(&pid, to.name(), to)
            .await
            .map_err(|e| self.ctx(e, op, to))?
        {
            Some(old) if old.is_folder() => Err(self.ctx(
                Error::new(ErrorKind::Conflict, "a folder is in the way of a file"),
                op,
                to,
            )),
            Some(old) => Ok((pid, Some(old.id))),
            None => Ok((pid, None)),
        }
    }

    async fn drop_replaced(
        &self,
        old: Option<String>,
        op: &'static str,
        to: &RemotePath,
    ) -> Result<()> {
        match old {
            Some(id) => deleter::remove_id(&self.core, &id, op)
                .await
                .map_err(|e| self.ctx(e, op, to)),
            None => Ok(()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct About {
    storage_quota: Quota,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Quota {
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    usage: Option<String>,
    #[serde(default)]
    usage_in_drive_trash: Option<String>,
}

fn num(s: &Option<String>) -> Option<u64> {
    s.as_deref().and_then(|v| v.parse().ok())
}

#[async_trait]
impl Remote for GdriveBackend {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.location.clone())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir)
            .await
            .map_err(|e| self.ctx(e, "list", dir))
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if path.is_root() {
            return Ok(Entry::dir(RemotePath::root()));
        }
        match self.core.lookup(path).await {
            Ok(Some(f)) => f.entry(path.clone()),
            Ok(None) => Err(self.ctx(
                Error::new(ErrorKind::NotFound, "no such file or directory"),
                "stat",
                path,
            )),
            Err(e) => Err(self.ctx(e, "stat", path)),
        }
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range)
            .await
            .map_err(|e| self.ctx(e, "read", path))
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(&self.core, path, body, meta)
            .await
            .map_err(|e| self.ctx(e, "write", path))
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        if dir.is_root() {
            return Ok(());
        }
        self.core
            .mkdir_all(dir)
            .await
            .map(|_| ())
            .map_err(|e| self.ctx(e, "mkdir", dir))
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path)
            .await
            .map_err(|e| self.ctx(e, "remove_file", path))
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir)
            .await
            .map_err(|e| self.ctx(e, "remove_dir", dir))
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let src = self.file(from, "copy").await?;
        let (pid, old) = self.target(to, "copy").await?;
        let mut body = serde_json::json!({ "name": name_to_drive(to.name()), "parents": [pid] });
        if let Some(t) = &src.modified_time {
            body["modifiedTime"] = Value::String(t.clone());
        }
        let f = self
            .core
            .copy_file(&src.id, body)
            .await
            .map_err(|e| self.ctx(e, "copy", from))?;
        self.drop_replaced(old, "copy", to).await?;
        f.entry(to.clone())
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let src = self.file(from, "rename").await?;
        let from_parent = from.parent().unwrap_or_default();
        let old_pid = self
            .core
            .dir_id(&from_parent)
            .await
            .map_err(|e| self.ctx(e, "rename", from))?
            .ok_or_else(|| {
                self.ctx(
                    Error::new(ErrorKind::NotFound, "no such file"),
                    "rename",
                    from,
                )
            })?;
        let (pid, old) = self.target(to, "rename").await?;
        if old.as_deref() == Some(src.id.as_str()) {
            return src.entry(to.clone());
        }
        let parents = (pid != old_pid).then_some((pid.as_str(), old_pid.as_str()));
        let f = self
            .core
            .update_meta(
                "rename",
                &src.id,
                serde_json::json!({ "name": name_to_drive(to.name()) }),
                parents,
            )
            .await
            .map_err(|e| self.ctx(e, "rename", from))?;
        self.drop_replaced(old, "rename", to).await?;
        f.entry(to.clone())
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let modtime = format_time(modtime).map_err(|e| self.ctx(e, "set_modtime", path))?;
        let f = self.file(path, "set_modtime").await?;
        self.core
            .update_meta(
                "set_modtime",
                &f.id,
                serde_json::json!({ "modifiedTime": modtime }),
                None,
            )
            .await
            .map_err(|e| self.ctx(e, "set_modtime", path))?;
        Ok(())
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        let f = self.file(path, "hash").await?;
        let known = match kind {
            HashKind::Md5 => f.md5_checksum,
            HashKind::Sha1 => f.sha1_checksum,
            HashKind::Sha256 => f.sha256_checksum,
            _ => None,
        };
        match known {
            Some(h) => Ok(h.to_ascii_lowercase()),
            None => Err(self.ctx(
                Error::new(
                    ErrorKind::Unsupported,
                    format!("Drive keeps no {kind} for this file"),
                ),
                "hash",
                path,
            )),
        }
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir)
            .await
            .map_err(|e| self.ctx(e, "purge", dir))
    }

    async fn cleanup(&self) -> Result<()> {
        deleter::cleanup(&self.core)
            .await
            .map_err(|e| e.with_remote(&self.name))
    }

    async fn usage(&self) -> Result<Usage> {
        let url = self.core.api("about");
        let res = self
            .core
            .send("usage", |c| {
                c.get(&url).query(&[("fields", "storageQuota")])
            })
            .await
            .map_err(|e| e.with_remote(&self.name))?;
        let about: About = crate::core::json_capped(res, "usage", "about response")
            .await
            .map_err(|e| e.with_remote(&self.name))?;
        let q = about.storage_quota;
        let (total, used) = (num(&q.limit), num(&q.usage));
        Ok(Usage {
            total,
            used,
            free: total.zip(used).map(|(t, u)| t.saturating_sub(u)),
            trashed: num(&q.usage_in_drive_trash),
        })
    }
}

/// Where the root folder is. Drive has no paths to compare, only ids, so the space is the
/// root's own id: `gdrive:folder:ID` for a `root_folder_id`, `gdrive:drive:ID` for the root of
/// a shared drive, `gdrive:my-drive` for My Drive (plus the API endpoint's host and port when
/// it is not Google's, as for an emulator). Two remotes with one root are one place, and the
/// sub-folders of one root (`Prefix` views) nest as paths do.
///
/// Without a request nothing tells which drive a folder id lies in, or which account a My
/// Drive is: a `root_folder_id` inside another remote's drive is judged apart from it, and
/// the My Drives of two accounts are judged one place (a refused sync, never a lost file).
fn location(drive_id: Option<&str>, root_id: &str, api_url: &str) -> Location {
    let mut space = match drive_id {
        _ if root_id == "root" => "gdrive:my-drive".to_owned(),
        Some(d) if d == root_id => format!("gdrive:drive:{d}"),
        _ => format!("gdrive:folder:{root_id}"),
    };
    if api_url.trim_end_matches('/') != DEFAULT_API_URL {
        if let Ok(u) = url::Url::parse(api_url) {
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let port = u.port_or_known_default().unwrap_or(0);
            space.push_str(&format!("@{host}:{port}"));
        }
    }
    Location::new(space, "")
}

/// Opens `gdrive` remotes from configuration.
///
/// ```
/// use cloudsync_core::BackendFactory;
/// assert_eq!(cloudsync_gdrive::GdriveFactory.type_name(), "gdrive");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GdriveFactory;

#[async_trait]
impl BackendFactory for GdriveFactory {
    fn type_name(&self) -> &'static str {
        "gdrive"
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: GdriveConfig = parse_config("gdrive", config)?;
        Ok(Arc::new(GdriveBackend::new(cfg)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_the_root_id() {
        let api = DEFAULT_API_URL;
        let my = location(None, "root", api);
        assert_eq!(my, location(None, "root", &format!("{api}/")));
        assert_eq!(
            location(Some("0AbC"), "0AbC", api),
            location(Some("0AbC"), "0AbC", api)
        );
        assert_ne!(my, location(Some("0AbC"), "0AbC", api));
        assert_ne!(
            location(Some("0AbC"), "0AbC", api),
            location(Some("0XyZ"), "0XyZ", api)
        );
        let folder = location(None, "1Fold", api);
        assert_eq!(folder, location(Some("0AbC"), "1Fold", api));
        assert_ne!(folder, my);
        assert_ne!(my, location(None, "root", "http://127.0.0.1:8089/drive/v3"));
        // A sub-folder view of one root is inside it.
        let sub = RemotePath::new("a/b").unwrap();
        assert!(folder.contains(&folder.join(&sub)));
    }

    #[cfg(feature = "emulator")]
    #[tokio::test]
    async fn missing_root_folder_lists_as_not_found() {
        let emu = crate::emulator::DriveEmulator::start().await;
        let b = GdriveBackend::new(emu.config().with_root_folder_id("no-such-folder")).unwrap();
        let e = b.list(&RemotePath::root()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn backend_reports_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("token.json");
        std::fs::write(&tokens, r#"{"refresh_token": "hunter2"}"#).unwrap();
        let cfg = GdriveConfig {
            client_id: Some("id".into()),
            token_file: Some(tokens),
            ..GdriveConfig::default()
        }
        .with_root_folder_id("1Fold");
        let b = GdriveBackend::new(cfg).unwrap();
        assert_eq!(b.location(), Some(location(None, "1Fold", DEFAULT_API_URL)));
        assert!(!b.location().unwrap().to_string().contains("hunter2"));
    }
}
