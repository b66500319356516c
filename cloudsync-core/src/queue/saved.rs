//! [`compare`]: runs a check with a [`CompareSpec`] and wraps it in a [`SavedReport`]; and
//! what the options of a compare stand for ([`CompareSpec::check_options`]).

use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::ops::{CheckOptions, check};
use crate::remote::Remote;
use crate::report::{CompareSpec, SavedReport, secs};

impl CompareSpec {
    /// The [`CheckOptions`] these stand for (8 checkers, no events).
    pub fn check_options(&self) -> Result<CheckOptions> {
        Ok(CheckOptions {
            filter: self.filters.build()?,
            size_only: self.size_only,
            download: self.download,
            one_way: self.one_way,
            checkers: 8,
            events: None,
            ..Default::default()
        })
    }
}

/// Runs [`check`] with `spec` and wraps the result; the locations stored are the remotes'
/// descriptions (override [`SavedReport::source`] / [`SavedReport::destination`] when the
/// remotes were opened from something else, e.g. a `name:path` of a config file).
pub async fn compare(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    spec: &CompareSpec,
) -> Result<SavedReport> {
    let clock = Instant::now();
    let opts = spec.check_options()?;
    let report = check(src, dst, &opts).await?;
    let mut saved = SavedReport::new(report, src.describe(), dst.describe(), spec.clone());
    saved.elapsed = secs::millis(clock.elapsed());
    Ok(saved)
}
