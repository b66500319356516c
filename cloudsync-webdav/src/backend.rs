//! [`WebdavRemote`]: its capabilities and a thin [`Remote`] implementation delegating to the
//! role functions.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, HashKind, Location, Remote, RemotePath, Result,
    SessionToken, WriteMeta,
};

use crate::config::{NextcloudConfig, Vendor, WebdavConfig};
use crate::core::WebdavCore;
use crate::{deleter, lister, mover, ranged, reader, sessions, writer};

/// A WebDAV server (generic, Nextcloud or ownCloud) as a [`Remote`].
///
/// ```no_run
/// # async fn demo() -> cloudsync_core::Result<()> {
/// use cloudsync_core::Remote;
/// use cloudsync_webdav::{Vendor, WebdavRemote, WebdavConfig};
///
/// let remote: WebdavRemote = WebdavConfig::new("https://cloud.example.com/remote.php/dav/files/alice/")
///     .with_vendor(Vendor::Nextcloud)
///     .with_user("alice", "NEXTCLOUD_APP_PASSWORD")
///     .build()?;
/// assert!(remote.capabilities().write_modtime);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WebdavRemote {
    core: Arc<WebdavCore>,
    caps: Capabilities,
}

impl WebdavRemote {
    /// Validates `config` (reading secrets from the environment) and builds the remote: the
    /// same as [`WebdavConfig::build`], kept for callers of earlier versions.
    pub fn new(config: WebdavConfig) -> Result<Self> {
        config.build()
    }

    /// Builds a remote from a `nextcloud` preset: the same as [`NextcloudConfig::build`].
    pub fn nextcloud(config: NextcloudConfig) -> Result<Self> {
        config.build()
    }

    /// The remote over a core, with the capabilities of its server family (called by the
    /// configs' `build`, the one way a remote is made).
    pub(crate) fn from_core(core: WebdavCore) -> Self {
        let caps = match core.vendor {
            Vendor::Generic => Capabilities {
                modtime_precision: Some(Duration::from_secs(1)),
                copy: true,
                rename: true,
                purge: true,
                dirs: true,
                // Ranged PUT where the server takes it (probed at the first write_at), and
                // MOVE to make the finished partial file visible.
                resume: true,
                ..Default::default()
            },
            Vendor::Nextcloud | Vendor::Owncloud => Capabilities {
                hashes: vec![HashKind::Sha1, HashKind::Md5],
                modtime_precision: Some(Duration::from_secs(1)),
                write_modtime: true,
                copy: true,
                rename: true,
                purge: true,
                cleanup: core.dav_root.is_some(),
                dirs: true,
                // Chunked upload v2 folders, which keep the chunks stored until the final
                // MOVE (Nextcloud only, as the chunked upload itself).
                resume_sessions: core.vendor == Vendor::Nextcloud && core.dav_root.is_some(),
                ..Default::default()
            },
        };
        WebdavRemote {
            core: Arc::new(core),
            caps,
        }
    }

    /// The server family this remote talks to.
    pub fn vendor(&self) -> Vendor {
        self.core.vendor
    }
}

/// The earlier name of [`WebdavRemote`].
#[deprecated(note = "renamed to `WebdavRemote`; open it with `WebdavConfig::build`")]
pub type WebdavBackend = WebdavRemote;

#[async_trait]
impl Remote for WebdavRemote {
    fn describe(&self) -> String {
        self.core.describe.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.core.location())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(&self.core, dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        lister::stat(&self.core, path).await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(&self.core, path, body, meta).await
    }

    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        if !self.caps.resume {
            return Err(self.unsupported("write_at"));
        }
        ranged::write_at(&self.core, path, offset, body, total).await
    }

    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<SessionToken> {
        let _ = meta;
        if !self.caps.resume_sessions {
            return Err(self.unsupported("session_start"));
        }
        sessions::start(&self.core, path, size).await
    }

    async fn session_offset(&self, token: &SessionToken) -> Result<u64> {
        if !self.caps.resume_sessions {
            return Err(self.unsupported("session_offset"));
        }
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
        if !self.caps.resume_sessions {
            return Err(self.unsupported("session_write"));
        }
        sessions::write(&self.core, token, path, offset, body, meta).await
    }

    async fn session_cancel(&self, token: &SessionToken) -> Result<()> {
        if !self.caps.resume_sessions {
            return Err(self.unsupported("session_cancel"));
        }
        sessions::cancel(&self.core, token).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        writer::mkdir_all(&self.core, dir, true).await
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
        reader::hash(&self.core, path, kind).await
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir).await
    }

    async fn cleanup(&self) -> Result<()> {
        if !self.caps.cleanup {
            return Err(self.unsupported("cleanup"));
        }
        deleter::cleanup(&self.core).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_fills_the_port_and_decodes_the_path() {
        let loc = |url: &str| {
            WebdavRemote::new(WebdavConfig::new(url))
                .unwrap()
                .location()
        };
        let a = loc("http://dav.example/a%20b/dav");
        assert!(a.is_some());
        assert_eq!(a, loc("http://DAV.example:80/a b/dav/"));
        assert_eq!(a, loc("http://dav.example/a%20b/x/../dav"));
        let inner = loc("http://dav.example/a%20b/dav/sub").unwrap();
        assert!(a.as_ref().unwrap().contains(&inner));
        assert_ne!(a, loc("http://dav.example:8080/a%20b/dav"));
        assert_ne!(a, loc("https://dav.example/a%20b/dav"));
        assert_ne!(a, loc("http://other.example/a%20b/dav"));
        assert_eq!(
            loc("https://dav.example/x"),
            loc("https://dav.example:443/x")
        );
        let with_user = WebdavRemote::new(
            WebdavConfig::new("http://dav.example/a%20b/dav").with_password("me", "hunter2"),
        )
        .unwrap()
        .location();
        assert_eq!(with_user, a);
        assert!(!with_user.unwrap().to_string().contains("hunter2"));
    }

    #[test]
    fn describe_has_no_secrets() {
        let b = WebdavRemote::new(
            WebdavConfig::new("http://127.0.0.1:8080/dav/").with_password("me", "hunter2"),
        )
        .unwrap();
        assert_eq!(b.describe(), "webdav://me@127.0.0.1:8080/dav");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
