//! [`DropboxRemote`]: its capabilities and the [`Remote`] implementation, each method a call
//! into the role files or [`DropboxCore`]. Opening is [`DropboxConfig::build`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind, Location, Remote,
    RemotePath, Result, SessionToken, Usage, WriteMeta,
};

use crate::config::DropboxConfig;
use crate::core::DropboxCore;
use crate::{deleter, lister, mover, names, reader, sessions, writer};

/// A Dropbox account (or a folder in it) as a [`Remote`].
///
/// ```no_run
/// # async fn demo() -> cloudsync_core::Result<()> {
/// use cloudsync_core::Remote;
/// use cloudsync_dropbox::DropboxConfig;
///
/// let remote = DropboxConfig::new("my-app-key")
///     .with_refresh_token_env("DROPBOX_REFRESH_TOKEN")
///     .with_root("Backups")
///     .build()?;
/// assert!(remote.capabilities().case_insensitive);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DropboxRemote {
    core: Arc<DropboxCore>,
    caps: Capabilities,
    location: Location,
}

/// The former name of [`DropboxRemote`].
#[deprecated(note = "renamed to `DropboxRemote`")]
pub type DropboxBackend = DropboxRemote;

impl DropboxRemote {
    /// The same as [`DropboxConfig::build`]: validates `config` (reading secrets from the
    /// environment or the token file) and builds the remote. No request is sent until the
    /// remote is used.
    pub fn new(config: DropboxConfig) -> Result<Self> {
        config.build()
    }

    /// The remote over `core`, with Dropbox's capabilities; called by [`DropboxConfig::build`].
    pub(crate) fn from_core(core: DropboxCore, location: Location) -> Self {
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
            // Upload sessions: append_v2 at the cursor offset, finish to commit.
            resume_sessions: true,
            ..Default::default()
        };
        DropboxRemote {
            core: Arc::new(core),
            caps,
            location,
        }
    }
}

#[async_trait]
impl Remote for DropboxRemote {
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
        self.core.stat(path).await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range).await
    }

    async fn session_start(
        &self,
        path: &RemotePath,
        _size: u64,
        _meta: &WriteMeta,
    ) -> Result<SessionToken> {
        sessions::start(&self.core, path).await
    }

    async fn session_offset(&self, token: &SessionToken) -> Result<u64> {
        sessions::offset(&self.core, token).await
    }

    async fn session_write(
        &self,
        token: &SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        sessions::write(&self.core, token, path, offset, body, meta).await
    }

    async fn session_cancel(&self, token: &SessionToken) -> Result<()> {
        sessions::cancel(&self.core, token).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::Conflict, "cannot write the root"));
        }
        names::check(path)?;
        writer::write(&self.core, path, body, meta).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.core.create_folder(dir).await
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path).await
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::copy(&self.core, from, to).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::rename(&self.core, from, to).await
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
        cloudsync_core::hash_stream(self.read(path, None).await?, kind).await
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.core.usage().await
    }

    async fn cleanup(&self) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "Dropbox has no API to empty the trash of personal accounts: deleted files stay \
             restorable until the service purges them (30 days on Basic and Plus plans)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "emulator")]
    #[tokio::test]
    async fn missing_root_lists_as_not_found() {
        let emu = crate::emulator::Emulator::start().unwrap();
        let b = DropboxRemote::new(emu.config().with_root("/no/such/folder")).unwrap();
        let e = b.list(&RemotePath::root()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn location_ignores_case_and_secrets_and_keeps_endpoints_apart() {
        let loc = |cfg: DropboxConfig| DropboxRemote::new(cfg).unwrap().location();
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
        let b = DropboxRemote::new(
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
        let b = DropboxRemote::new(DropboxConfig::new("k").with_refresh_token("r")).unwrap();
        let e = b.cleanup().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("trash"), "{e}");
    }
}
