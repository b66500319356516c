//! [`BandwidthLimited`]: a wrapper that holds uploads and downloads to a number of bytes per
//! second, with rclone's `--bwlimit` and `--bwlimit-file` syntax.
//!
//! One [`BandwidthLimiter`] holds one token bucket per direction; every remote it wraps, and
//! every clone of them, draws from those two buckets, so the limit is for the whole run, not
//! per remote or per file. Reading a file ([`Remote::read`]) is a download, writing one
//! ([`Remote::write`], [`Remote::write_from_file`]) an upload. Listings and other calls are not
//! limited (as in rclone), nor are server-side copies and moves (no byte crosses the link).
//!
//! A limit can follow a timetable (`"08:00,512k 19:00,10M 23:00,off"`): the entry whose time
//! was passed last is in force, the last entry of the day (or week) until the first one. It is
//! looked up on a [`WallClock`] before each piece of at most a tenth of a second's worth of
//! bytes, so a change applies within that time of its boundary.
//!
//! Place: outermost, above any retrying or timeout wrapper, so that a retried upload is
//! limited like the first attempt and the time spent waiting for tokens is not counted as a
//! server's silence.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio::time::{Duration, Instant};

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::parse_size;
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// A pair of limits in bytes per second (`None`: unlimited).
///
/// ```
/// use cloudsync_core::BwLimit;
/// assert_eq!("10M".parse::<BwLimit>()?, BwLimit { up: Some(10 << 20), down: Some(10 << 20) });
/// assert_eq!("512k:off".parse::<BwLimit>()?, BwLimit { up: Some(512 << 10), down: None });
/// assert_eq!("off".parse::<BwLimit>()?, BwLimit::OFF);
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BwLimit {
    /// Uploads (writes to a remote).
    pub up: Option<u64>,
    /// Downloads (reads from a remote).
    pub down: Option<u64>,
}

impl BwLimit {
    /// No limit either way.
    pub const OFF: BwLimit = BwLimit {
        up: None,
        down: None,
    };

    fn get(self, dir: Direction) -> Option<u64> {
        match dir {
            Direction::Up => self.up,
            Direction::Down => self.down,
        }
    }
}

impl FromStr for BwLimit {
    type Err = Error;

    /// `SIZE` (both ways) or `UP:DOWN`, each a size as in [`parse_size`] (`512k`, `10M`, a bare
    /// number is KiB) or `off`; `0` means off, as in rclone.
    fn from_str(text: &str) -> Result<Self> {
        let one = |s: &str| -> Result<Option<u64>> {
            parse_size(s.trim())
                .map(|v| v.filter(|&v| v > 0))
                .map_err(|e| bad(text, e.message()))
        };
        match text.split_once(':') {
            Some((up, down)) => Ok(BwLimit {
                up: one(up)?,
                down: one(down)?,
            }),
            None => {
                let v = one(text)?;
                Ok(BwLimit { up: v, down: v })
            }
        }
    }
}

fn bad(text: &str, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("bandwidth {text:?}: {why}"),
    )
}

/// A bandwidth limit that may change with the time of day or week (rclone's `BwTimetable`).
///
/// `10M`, `10M:off` and `off` are constant. A timetable is a list of `TIME,LIMIT` separated by
/// spaces, where `TIME` is `HH:MM` (every day) or `Mon-HH:MM` (that weekday: `Mon` ... `Sun`),
/// and `LIMIT` is anything [`BwLimit`] accepts. Daily entries hold for every day of the week.
///
/// ```
/// use cloudsync_core::{BwLimit, BwTimetable};
/// use cloudsync_core::deps::time::macros::datetime;
/// let t: BwTimetable = "08:00,512k 19:00,10M 23:00,off".parse()?;
/// assert_eq!(t.at(datetime!(2026-01-05 07:59)), BwLimit::OFF); // last entry of the day before
/// assert_eq!(t.at(datetime!(2026-01-05 08:00)).up, Some(512 * 1024));
/// assert_eq!(t.at(datetime!(2026-01-05 19:30)).down, Some(10 << 20));
/// let w: BwTimetable = "Mon-00:00,1M Sat-00:00,off".parse()?; // 1 MiB/s on weekdays only
/// assert_eq!(w.at(datetime!(2026-01-07 12:00)).up, Some(1 << 20)); // a Wednesday
/// assert_eq!(w.at(datetime!(2026-01-10 12:00)), BwLimit::OFF); // a Saturday
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwTimetable {
    /// Sorted by minute of the week (0 = Monday 00:00); never empty.
    slots: Vec<(u32, BwLimit)>,
}

const DAY_MINUTES: u32 = 24 * 60;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl BwTimetable {
    /// The same limit at all times.
    pub fn constant(limit: BwLimit) -> Self {
        BwTimetable {
            slots: vec![(0, limit)],
        }
    }

    /// The limit in force at local time `now`.
    pub fn at(&self, now: PrimitiveDateTime) -> BwLimit {
        let minute = u32::from(now.weekday().number_days_from_monday()) * DAY_MINUTES
            + u32::from(now.hour()) * 60
            + u32::from(now.minute());
        let fallback = self.slots.last().map_or(BwLimit::OFF, |s| s.1);
        self.slots
            .iter()
            .rev()
            .find(|(m, _)| *m <= minute)
            .map_or(fallback, |s| s.1)
    }

    /// Whether no entry limits anything.
    pub fn is_off(&self) -> bool {
        self.slots.iter().all(|(_, l)| *l == BwLimit::OFF)
    }

    /// Whether every entry limits both directions alike (`10M`, not `10M:off`).
    pub fn is_symmetric(&self) -> bool {
        self.slots.iter().all(|(_, l)| l.up == l.down)
    }

    fn limits(&self, dir: Direction) -> bool {
        self.slots.iter().any(|(_, l)| l.get(dir).is_some())
    }
}

impl FromStr for BwTimetable {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        if !text.contains(',') {
            return Ok(BwTimetable::constant(text.parse()?));
        }
        let mut slots = Vec::new();
        for entry in text.split_whitespace() {
            let Some((when, limit)) = entry.split_once(',') else {
                return Err(bad(text, format!("{entry:?} is not TIME,LIMIT")));
            };
            let limit: BwLimit = limit.parse().map_err(|e: Error| bad(text, e.message()))?;
            let (day, hhmm) = match when.split_once('-') {
                Some((d, t)) => {
                    let day = DAYS
                        .iter()
                        .position(|n| n.eq_ignore_ascii_case(d))
                        .ok_or_else(|| bad(text, format!("{d:?} is not a weekday (Mon..Sun)")))?;
                    (Some(day as u32), t)
                }
                None => (None, when),
            };
            let minute = parse_hhmm(hhmm)
                .ok_or_else(|| bad(text, format!("{hhmm:?} is not a time (HH:MM)")))?;
            match day {
                Some(d) => slots.push((d * DAY_MINUTES + minute, limit)),
                None => slots.extend((0..7).map(|d| (d * DAY_MINUTES + minute, limit))),
            }
        }
        if slots.is_empty() {
            return Err(bad(text, "empty timetable"));
        }
        // Stable: of two entries for one minute, the later one written wins.
        slots.sort_by_key(|s| s.0);
        Ok(BwTimetable { slots })
    }
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Where a timetable reads the local time of day. Inject one in tests.
///
/// ```
/// use cloudsync_core::{SystemClock, WallClock};
/// use cloudsync_core::deps::time::UtcOffset;
/// let clock = SystemClock::new(UtcOffset::from_hms(2, 0, 0)?);
/// let _now = clock.now();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait WallClock: Send + Sync + fmt::Debug {
    /// The local date and time now.
    fn now(&self) -> PrimitiveDateTime;
}

/// The system clock seen at a fixed UTC offset (the local one, found by the caller while the
/// program is still single-threaded; a change of daylight saving time during a run is not
/// followed).
///
/// ```
/// use cloudsync_core::SystemClock;
/// let _utc = SystemClock::default();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    offset: Option<UtcOffset>,
}

impl SystemClock {
    /// The system clock at `offset` from UTC.
    pub fn new(offset: UtcOffset) -> Self {
        SystemClock {
            offset: Some(offset),
        }
    }
}

impl WallClock for SystemClock {
    fn now(&self) -> PrimitiveDateTime {
        let t = OffsetDateTime::now_utc().to_offset(self.offset.unwrap_or(UtcOffset::UTC));
        PrimitiveDateTime::new(t.date(), t.time())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// A token bucket that starts empty and saves at most a tenth of a second's worth of tokens.
/// Takers go into debt and sleep it off, which serialises concurrent takers fairly.
#[derive(Debug)]
struct Bucket {
    rate: Option<u64>,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new() -> Mutex<Bucket> {
        Mutex::new(Bucket {
            rate: None,
            tokens: 0.0,
            last: Instant::now(),
        })
    }
}

/// Takes `n` tokens at `rate` (bytes per second) from `bucket`, waiting as needed.
async fn take(bucket: &Mutex<Bucket>, rate: Option<u64>, n: usize) {
    let wait = {
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if b.rate != rate {
            // A new limit starts afresh: debt owed under the old one is forgiven.
            b.rate = rate;
            b.tokens = 0.0;
            b.last = now;
        }
        let Some(rate) = rate else { return };
        let rate = rate as f64;
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(rate / 10.0);
        b.last = now;
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            return;
        }
        Duration::from_secs_f64(-b.tokens / rate)
    };
    tokio::time::sleep(wait).await;
}

struct Shared {
    total: BwTimetable,
    per_file: Option<BwTimetable>,
    clock: Arc<dyn WallClock>,
    up: Mutex<Bucket>,
    down: Mutex<Bucket>,
}

/// The buckets of one run: wrap every remote of the run with it ([`BandwidthLimiter::wrap`]).
///
/// ```
/// use cloudsync_core::{memory, BandwidthLimiter};
/// let limiter = BandwidthLimiter::new("10M:off".parse()?, None);
/// let src = limiter.wrap(memory());
/// let dst = limiter.wrap(memory()); // shares the upload bucket with `src`
/// # let _ = (src, dst);
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone)]
pub struct BandwidthLimiter {
    shared: Arc<Shared>,
}

impl fmt::Debug for BandwidthLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BandwidthLimiter")
            .field("total", &self.shared.total)
            .field("per_file", &self.shared.per_file)
            .finish_non_exhaustive()
    }
}

impl BandwidthLimiter {
    /// A limiter for `total` (all transfers together, `--bwlimit`) and `per_file` (each file,
    /// `--bwlimit-file`), on the system clock in UTC.
    pub fn new(total: BwTimetable, per_file: Option<BwTimetable>) -> Self {
        Self::with_clock(total, per_file, Arc::new(SystemClock::default()))
    }

    /// As [`BandwidthLimiter::new`], with the timetables read on `clock`.
    pub fn with_clock(
        total: BwTimetable,
        per_file: Option<BwTimetable>,
        clock: Arc<dyn WallClock>,
    ) -> Self {
        BandwidthLimiter {
            shared: Arc::new(Shared {
                total,
                per_file: per_file.filter(|t| !t.is_off()),
                clock,
                up: Bucket::new(),
                down: Bucket::new(),
            }),
        }
    }

    /// Whether nothing is ever limited.
    pub fn is_off(&self) -> bool {
        self.shared.total.is_off() && self.shared.per_file.is_none()
    }

    /// Whether both directions are always limited alike, so that it also makes sense for a
    /// local folder (the registry wraps local folders only then: `10M:off` limits uploads to
    /// a network remote, not writes to a local disk).
    pub fn is_symmetric(&self) -> bool {
        self.shared.total.is_symmetric()
            && self
                .shared
                .per_file
                .as_ref()
                .is_none_or(|t| t.is_symmetric())
    }

    /// The total limit in force now.
    pub fn current(&self) -> BwLimit {
        self.shared.total.at(self.shared.clock.now())
    }

    /// Wraps `inner` so that its reads and writes draw on this limiter's buckets.
    pub fn wrap(&self, inner: Arc<dyn Remote>) -> Arc<dyn Remote> {
        Arc::new(BandwidthLimited {
            inner,
            limiter: self.clone(),
        })
    }

    fn limits(&self, dir: Direction) -> bool {
        self.shared.total.limits(dir)
            || self.shared.per_file.as_ref().is_some_and(|t| t.limits(dir))
    }

    /// `s`, slowed down to the limits of `dir` (and a per-file bucket of its own).
    fn limit(&self, s: ByteStream, dir: Direction) -> ByteStream {
        let shared = self.shared.clone();
        let file = Bucket::new();
        let state = (s, Bytes::new(), shared, file);
        futures::stream::unfold(Some(state), move |state| async move {
            let (mut s, mut pending, shared, file) = state?;
            if pending.is_empty() {
                match s.next().await? {
                    Ok(b) => pending = b,
                    Err(e) => return Some((Err(e), None)),
                }
            }
            let now = shared.clock.now();
            let total = shared.total.at(now).get(dir);
            let each = shared.per_file.as_ref().and_then(|t| t.at(now).get(dir));
            // Pieces of at most a tenth of a second's worth, so that waits stay short and
            // a new limit applies soon after its time.
            let piece = [total, each]
                .into_iter()
                .flatten()
                .min()
                .map_or(usize::MAX, |r| {
                    usize::try_from(r / 10).unwrap_or(usize::MAX)
                })
                .max(512);
            let chunk = pending.split_to(piece.min(pending.len()));
            let bucket = match dir {
                Direction::Up => &shared.up,
                Direction::Down => &shared.down,
            };
            take(bucket, total, chunk.len()).await;
            take(&file, each, chunk.len()).await;
            Some((Ok(chunk), Some((s, pending, shared, file))))
        })
        .boxed()
    }
}

/// A remote whose file contents flow no faster than its [`BandwidthLimiter`] allows.
///
/// ```
/// use cloudsync_core::{memory, BandwidthLimited, BandwidthLimiter};
/// let remote = BandwidthLimited::wrap(memory(), BandwidthLimiter::new("1M".parse()?, None));
/// # let _ = remote;
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BandwidthLimited {
    inner: Arc<dyn Remote>,
    limiter: BandwidthLimiter,
}

impl BandwidthLimited {
    /// Wraps `inner` with `limiter` (same as [`BandwidthLimiter::wrap`]).
    pub fn wrap(inner: Arc<dyn Remote>, limiter: BandwidthLimiter) -> Arc<dyn Remote> {
        limiter.wrap(inner)
    }
}

#[async_trait]
impl Remote for BandwidthLimited {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> Option<Location> {
        self.inner.location()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.inner.list(dir).await
    }
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.inner.list_recursive(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        let s = self.inner.read(path, range).await?;
        Ok(self.limiter.limit(s, Direction::Down))
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        let body = self.limiter.limit(body, Direction::Up);
        self.inner.write(path, body, meta).await
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        let body = self.limiter.limit(body, Direction::Up);
        self.inner.write_at(path, offset, body, total).await
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        self.inner.session_start(path, size, meta).await
    }
    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        self.inner.session_offset(token).await
    }
    async fn session_write(
        &self,
        token: &crate::resume_state::SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let body = self.limiter.limit(body, Direction::Up);
        self.inner
            .session_write(token, path, offset, body, meta)
            .await
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.inner.session_cancel(token).await
    }
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        if !self.limiter.limits(Direction::Up) {
            return self.inner.write_from_file(path, local, meta).await;
        }
        // Streamed, so that the bytes can be counted (no kernel-side copy).
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::from(e).with_path(local.display()))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map(|r| r.map_err(Error::from))
            .boxed();
        self.write(path, stream, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(dir).await
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.inner.copy(from, to).await
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.inner.rename(from, to).await
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        self.inner.set_modtime(path, modtime).await
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        self.inner.hash(path, kind).await
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.inner.purge(dir).await
    }
    async fn cleanup(&self) -> Result<()> {
        self.inner.cleanup().await
    }
    async fn usage(&self) -> Result<Usage> {
        self.inner.usage().await
    }
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        self.inner.local_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bytes_stream, collect_bytes, memory};
    use time::macros::datetime;

    /// Wall time that follows tokio's (paused) clock from `start`.
    #[derive(Debug)]
    struct TokioClock {
        start: PrimitiveDateTime,
        origin: Instant,
    }

    impl WallClock for TokioClock {
        fn now(&self) -> PrimitiveDateTime {
            self.start + self.origin.elapsed()
        }
    }

    fn clock(start: PrimitiveDateTime) -> Arc<dyn WallClock> {
        Arc::new(TokioClock {
            start,
            origin: Instant::now(),
        })
    }

    const MIB: usize = 1 << 20;

    async fn put(r: &Arc<dyn Remote>, name: &str, len: usize) -> RemotePath {
        let p = RemotePath::new(name).unwrap();
        r.write(&p, bytes_stream(vec![7u8; len]), WriteMeta::default())
            .await
            .unwrap();
        p
    }

    #[test]
    fn parsing() {
        let t: BwTimetable = "10M".parse().unwrap();
        assert_eq!(t, BwTimetable::constant("10M:10M".parse().unwrap()));
        assert!("0".parse::<BwTimetable>().unwrap().is_off());
        assert!(!"1M:off".parse::<BwTimetable>().unwrap().is_symmetric());
        let t: BwTimetable = "mon-10:00,2M 08:00,512k:1M".parse().unwrap();
        assert_eq!(t.slots.len(), 8);
        for bad in [
            "10Q",
            "25:00,1M",
            "08:00,1M 9,2M",
            "Xyz-10:00,1M",
            "08:00,x",
            "1M:2M:3M",
        ] {
            let e = bad.parse::<BwTimetable>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(e.message().starts_with("bandwidth \""), "{}", e.message());
        }
    }

    #[test]
    fn timetable_wraps_around_the_day_and_week() {
        let t: BwTimetable = "08:00,512k 19:00,10M 23:00,off".parse().unwrap();
        assert_eq!(t.at(datetime!(2026-01-05 00:00)), BwLimit::OFF);
        assert_eq!(t.at(datetime!(2026-01-05 18:59)).up, Some(512 << 10));
        assert_eq!(t.at(datetime!(2026-01-05 19:00)).up, Some(10 << 20));
        assert_eq!(t.at(datetime!(2026-01-05 23:00)), BwLimit::OFF);
        // Weekly: Sunday evening is still under Friday's entry; Monday morning wraps to it.
        let w: BwTimetable = "Mon-09:00,1M Fri-17:00,off".parse().unwrap();
        assert_eq!(w.at(datetime!(2026-01-11 20:00)), BwLimit::OFF); // Sunday
        assert_eq!(w.at(datetime!(2026-01-05 08:59)), BwLimit::OFF); // Monday
        assert_eq!(w.at(datetime!(2026-01-05 09:00)).down, Some(1 << 20));
        assert_eq!(w.at(datetime!(2026-01-09 16:59)).down, Some(1 << 20)); // Friday
    }

    /// 12 MiB at 3 MiB/s up: 4 s of (paused) time, uploads only.
    #[tokio::test(start_paused = true)]
    async fn upload_rate_is_held() {
        let limiter = BandwidthLimiter::new("3M:off".parse().unwrap(), None);
        let dst = limiter.wrap(memory());
        let start = Instant::now();
        put(&dst, "a", 12 * MIB).await;
        let took = start.elapsed().as_secs_f64();
        assert!((3.9..=4.1).contains(&took), "took {took} s");
        // Downloads are off.
        let start = Instant::now();
        let p = RemotePath::new("a").unwrap();
        let got = collect_bytes(dst.read(&p, None).await.unwrap())
            .await
            .unwrap();
        assert_eq!(got.len(), 12 * MIB);
        assert!(start.elapsed() < Duration::from_millis(10));
    }

    /// Two remotes and two concurrent downloads share one bucket: 8 MiB at 4 MiB/s is 2 s.
    #[tokio::test(start_paused = true)]
    async fn one_bucket_for_the_whole_run() {
        let (a, b) = (memory(), memory());
        put(&a, "x", 4 * MIB).await;
        put(&b, "y", 4 * MIB).await;
        let limiter = BandwidthLimiter::new("off:4M".parse().unwrap(), None);
        let (a, b) = (limiter.wrap(a), limiter.clone().wrap(b));
        let start = Instant::now();
        let (x, y) = (RemotePath::new("x").unwrap(), RemotePath::new("y").unwrap());
        let (ra, rb) = tokio::join!(
            async { collect_bytes(a.read(&x, None).await.unwrap()).await },
            async { collect_bytes(b.read(&y, None).await.unwrap()).await },
        );
        assert_eq!(ra.unwrap().len() + rb.unwrap().len(), 8 * MIB);
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..=2.1).contains(&took), "took {took} s");
    }

    /// `--bwlimit-file 1M`: two files at once each go at 1 MiB/s (2 MiB in 1 s, not 2 s).
    #[tokio::test(start_paused = true)]
    async fn per_file_limit() {
        let limiter = BandwidthLimiter::new(BwTimetable::constant(BwLimit::OFF), "1M".parse().ok());
        let dst = limiter.wrap(memory());
        let start = Instant::now();
        tokio::join!(put(&dst, "a", MIB), put(&dst, "b", MIB));
        let took = start.elapsed().as_secs_f64();
        assert!((0.9..=1.1).contains(&took), "took {took} s");
    }

    /// The limit switches at 08:00: 1 MiB/s before, 4 MiB/s after. Starting at 07:59:58, the
    /// first 2 s carry 2 MiB, the next 6 MiB take 1.5 s.
    #[tokio::test(start_paused = true)]
    async fn timetable_switches_at_its_boundary() {
        let table: BwTimetable = "08:00,4M 20:00,1M".parse().unwrap();
        let limiter =
            BandwidthLimiter::with_clock(table, None, clock(datetime!(2026-01-05 7:59:58)));
        assert_eq!(limiter.current().up, Some(1 << 20));
        let dst = limiter.wrap(memory());
        let start = Instant::now();
        put(&dst, "a", 8 * MIB).await;
        let took = start.elapsed().as_secs_f64();
        assert!((3.4..=3.6).contains(&took), "took {took} s");
        assert_eq!(limiter.current().up, Some(4 << 20));
    }

    /// A file copied from a local folder is streamed (and limited), not copied by the kernel.
    #[tokio::test(start_paused = true)]
    async fn write_from_file_is_limited() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![1u8; MIB]).unwrap();
        let limiter = BandwidthLimiter::new("2M".parse().unwrap(), None);
        let dst = limiter.wrap(memory());
        let start = Instant::now();
        let p = RemotePath::new("f").unwrap();
        let e = dst
            .write_from_file(&p, &file, WriteMeta::default())
            .await
            .unwrap();
        assert_eq!(e.size, MIB as u64);
        let took = start.elapsed().as_secs_f64();
        assert!((0.45..=0.55).contains(&took), "took {took} s");
    }
}
