//! [`GcsBackend`]: the [`Remote`] over the Cloud Storage JSON API, and its factory.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind,
    Location, QueryKind, Remote, RemotePath, Result, WriteMeta, parse_config,
};
use serde_json::Value;
use time::OffsetDateTime;

use super::config::{GcsConfig, invalid};
use super::core::{GcsCore, mtime_metadata};
use super::writer::Precondition;
use super::{deleter, lister, reader, writer};

/// A Cloud Storage bucket (or a prefix in it) as a [`Remote`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{Remote, RemotePath};
/// use cloudsync_gdrive::GcsConfig;
/// let gcs = GcsConfig::new("my-bucket").with_prefix("backups").build()?;
/// let e = gcs.stat(&RemotePath::new("notes.txt")?).await?;
/// println!("{} bytes, md5 {:?}", e.size, e.hashes.get(cloudsync_core::HashKind::Md5));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GcsBackend {
    core: Arc<GcsCore>,
    name: String,
    caps: Capabilities,
}

/// What a GCS remote can do.
fn gcs_capabilities() -> Capabilities {
    Capabilities {
        // Every object has an MD5 but composite ones; every object has a CRC32C.
        hashes: vec![HashKind::Md5, HashKind::Crc32c],
        // `mtime` keeps nanoseconds (objects without it show their upload time).
        modtime_precision: Some(Duration::from_nanos(1)),
        write_modtime: true,
        set_modtime: true,
        copy: true,
        rename: true,
        list_recursive: true,
        // Object names are at most 1024 bytes of UTF-8 ("Object naming requirements").
        max_name_len: Some(1024),
        // A single object is at most 5 TiB.
        max_file_size: Some(5 * 1024 * 1024 * 1024 * 1024),
        ..Default::default()
    }
}

impl GcsConfig {
    /// Validates the configuration and builds the remote. No request is sent.
    pub fn build(&self) -> Result<GcsBackend> {
        let v = self.validate()?;
        let mut name = format!("gs://{}", v.bucket);
        if !v.prefix.is_root() {
            name.push('/');
            name.push_str(v.prefix.as_str());
        }
        Ok(GcsBackend {
            core: Arc::new(GcsCore::new(v)?),
            name,
            caps: gcs_capabilities(),
        })
    }
}

impl GcsBackend {
    fn ctx(&self, e: Error, op: &'static str, path: &RemotePath) -> Error {
        e.with_operation(op).with_remote(&self.name).with_path(path)
    }

    fn not_found(&self, op: &'static str, path: &RemotePath) -> Error {
        self.ctx(
            Error::new(ErrorKind::NotFound, "no such file or directory"),
            op,
            path,
        )
    }

    /// Writes `path` only if no object is there yet (`ifGenerationMatch=0`): the service
    /// refuses with `ConditionNotMatch` when one is. Two writers racing for one name cannot
    /// both win.
    ///
    /// fake-gcs-server (1.54) checks this precondition on multipart uploads only; on resumable
    /// (and media) uploads it replaces the object. The real service checks it on every upload.
    pub async fn write_if_absent(
        &self,
        path: &RemotePath,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        self.put(path, body, meta, Precondition::DoesNotExist).await
    }

    async fn put(
        &self,
        path: &RemotePath,
        body: ByteStream,
        meta: WriteMeta,
        pre: Precondition,
    ) -> Result<Entry> {
        if path.is_root() {
            return Err(self.ctx(
                Error::new(ErrorKind::InvalidInput, "cannot write to the root"),
                "write",
                path,
            ));
        }
        let name = self.core.object_name(path);
        let obj = writer::write(&self.core, &name, body, &meta, pre)
            .await
            .map_err(|e| self.ctx(e, "write", path))?;
        obj.entry(path.clone())
            .map_err(|e| self.ctx(e, "write", path))
    }
}

#[async_trait]
impl Remote for GcsBackend {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> Option<Location> {
        Some(Location::new(
            format!("gs://{}", self.core.cfg.bucket),
            self.core.cfg.prefix.as_str(),
        ))
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let name = self.name.clone();
        Ok(futures::StreamExt::boxed(futures::StreamExt::map(
            lister::list(self.core.clone(), dir, true)
                .await
                .map_err(|e| e.with_remote(&self.name))?,
            move |r| r.map_err(|e| e.with_remote(&name)),
        )))
    }

    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        let name = self.name.clone();
        Ok(futures::StreamExt::boxed(futures::StreamExt::map(
            lister::list(self.core.clone(), dir, false)
                .await
                .map_err(|e| e.with_remote(&self.name))?,
            move |r| r.map_err(|e| e.with_remote(&name)),
        )))
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if !path.is_root() {
            match self.core.get_object(&self.core.object_name(path)).await {
                Ok(o) => return o.entry(path.clone()).map_err(|e| self.ctx(e, "stat", path)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.ctx(e, "stat", path)),
            }
        }
        if self
            .core
            .dir_exists(path)
            .await
            .map_err(|e| self.ctx(e, "stat", path))?
        {
            Ok(Entry::dir(path.clone()))
        } else {
            Err(self.not_found("stat", path))
        }
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, &self.core.object_name(path), range)
            .await
            .map_err(|e| self.ctx(e, "read", path))
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        self.put(path, body, meta, Precondition::None).await
    }

    async fn mkdir(&self, _dir: &RemotePath) -> Result<()> {
        // Directories are implicit: they exist while an object lies below them.
        Ok(())
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
        let obj = self
            .core
            .rewrite(&self.core.object_name(from), &self.core.object_name(to))
            .await
            .map_err(|e| self.ctx(e, "copy", from))?;
        obj.entry(to.clone()).map_err(|e| self.ctx(e, "copy", to))
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        if from == to {
            // A rewrite and a delete of one name would delete the file.
            return self.stat(from).await;
        }
        // No move in the API: a rewrite, then the source goes.
        let obj = self
            .core
            .rewrite(&self.core.object_name(from), &self.core.object_name(to))
            .await
            .map_err(|e| self.ctx(e, "rename", from))?;
        self.core
            .delete_object(&self.core.object_name(from), None)
            .await
            .map_err(|e| self.ctx(e, "rename", from))?;
        obj.entry(to.clone()).map_err(|e| self.ctx(e, "rename", to))
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let meta = mtime_metadata(modtime).map_err(|e| self.ctx(e, "set_modtime", path))?;
        self.core
            .patch_metadata(&self.core.object_name(path), meta)
            .await
            .map_err(|e| self.ctx(e, "set_modtime", path))?;
        Ok(())
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        if matches!(kind, HashKind::Md5 | HashKind::Crc32c) {
            let o = self
                .core
                .get_object(&self.core.object_name(path))
                .await
                .map_err(|e| self.ctx(e, "hash", path))?;
            if let Some(h) = o.hashes().get(kind) {
                return Ok(h.to_owned());
            }
        }
        // A composite object has no MD5: read it.
        let mut body = self.read(path, None).await?;
        let mut h = cloudsync_core::MultiHasher::new(&[kind]);
        while let Some(chunk) = futures::TryStreamExt::try_next(&mut body).await? {
            h.update(&chunk);
        }
        h.finish()
            .get(kind)
            .map(str::to_owned)
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "hasher produced no value"))
    }
}

/// Opens `gcs` remotes from configuration and `gs://bucket/prefix` URLs.
///
/// ```
/// use cloudsync_core::BackendFactory;
/// let url = url::Url::parse("gs://backups/photos?anonymous=true").unwrap();
/// let cfg = cloudsync_gdrive::GcsFactory.config_from_url(&url)?;
/// assert_eq!(cfg["bucket"], "backups");
/// assert_eq!(cfg["prefix"], "photos");
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GcsFactory;

#[async_trait]
impl BackendFactory for GcsFactory {
    fn type_name(&self) -> &'static str {
        "gcs"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["gs", "gcs"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let bucket = url.host_str().ok_or_else(|| {
            invalid(
                "bucket",
                format!(
                    "no bucket in {}",
                    cloudsync_core::redact_location(url.as_str())
                ),
            )
        })?;
        let mut cfg = serde_json::Map::new();
        cfg.insert("bucket".into(), Value::String(bucket.to_owned()));
        let prefix = percent_encoding::percent_decode_str(url.path().trim_matches('/'))
            .decode_utf8()
            .map_err(|e| invalid("prefix", e))?;
        cfg.insert("prefix".into(), Value::String(prefix.into_owned()));
        cloudsync_core::query_to_config(
            "gcs",
            url,
            &[
                ("service_account_file", QueryKind::Text),
                ("base_url", QueryKind::Text),
                ("anonymous", QueryKind::Flag),
                ("chunk_size", QueryKind::Number),
                ("upload_cutoff", QueryKind::Number),
                ("timeout", QueryKind::Number),
            ],
            &mut cfg,
        )?;
        Ok(Value::Object(cfg))
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: GcsConfig = parse_config("gcs", config)?;
        Ok(Arc::new(cfg.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_bucket_and_prefix() {
        let r = GcsConfig::new("bkt")
            .with_prefix("/a/b/")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(r.describe(), "gs://bkt/a/b");
        assert_eq!(
            r.core.object_name(&RemotePath::new("c/d").unwrap()),
            "a/b/c/d"
        );
        assert_eq!(r.core.dir_prefix(&RemotePath::root()), "a/b/");
        let top = GcsConfig::new("bkt")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(top.core.dir_prefix(&RemotePath::root()), "");
        assert_eq!(top.core.dir_prefix(&RemotePath::new("x").unwrap()), "x/");
    }

    #[test]
    fn url_rejects_unknown_keys() {
        let url = url::Url::parse("gs://b/p?nope=1").unwrap();
        assert!(GcsFactory.config_from_url(&url).is_err());
    }
}
