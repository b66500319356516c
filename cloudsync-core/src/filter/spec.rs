//! [`FilterSpec`]: filter flags in a form that can be stored (in a saved report, a queued
//! compare request) and built again into a [`FilterSet`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::filter::{FilterBuilder, FilterSet, parse_age};

/// Filter flags in a form that can be stored and rebuilt (a compiled
/// [`FilterSet`] cannot), with rclone's flag names and meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSpec {
    /// `--include` globs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// `--exclude` globs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `--filter` rules (`+ glob`, `- glob`, `!`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<String>,
    /// `--include-from` files (read when the set is built).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_from: Vec<PathBuf>,
    /// `--exclude-from` files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_from: Vec<PathBuf>,
    /// `--filter-from` files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_from: Vec<PathBuf>,
    /// `--files-from` files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_from: Vec<PathBuf>,
    /// `--min-size` in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// `--max-size` in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// `--min-age` as written (`2h`, `2026-01-01`), measured when the set is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_age: Option<String>,
    /// `--max-age` as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// `--max-depth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
    /// `--ignore-case`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Skip names starting with `.` or `_` ([`FilterBuilder::exclude_hidden_and_underscore`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exclude_hidden: bool,
}

impl FilterSpec {
    /// Adds these flags to a builder.
    pub fn apply(&self, b: &mut FilterBuilder) -> Result<()> {
        for g in &self.include {
            b.include(g);
        }
        for g in &self.exclude {
            b.exclude(g);
        }
        for r in &self.filter {
            b.filter(r);
        }
        for f in &self.include_from {
            b.include_from(f);
        }
        for f in &self.exclude_from {
            b.exclude_from(f);
        }
        for f in &self.filter_from {
            b.filter_from(f);
        }
        for f in &self.files_from {
            b.files_from(f);
        }
        if let Some(s) = self.min_size {
            b.min_size(s);
        }
        if let Some(s) = self.max_size {
            b.max_size(s);
        }
        if let Some(a) = &self.min_age {
            b.min_age_limit(parse_age(a)?);
        }
        if let Some(a) = &self.max_age {
            b.max_age_limit(parse_age(a)?);
        }
        if let Some(d) = self.max_depth {
            b.max_depth(d);
        }
        b.ignore_case(self.ignore_case);
        if self.exclude_hidden {
            b.exclude_hidden_and_underscore();
        }
        Ok(())
    }

    /// Builds the [`FilterSet`] (reading the `*_from` files now).
    pub fn build(&self) -> Result<FilterSet> {
        let mut b = FilterSet::builder();
        self.apply(&mut b)?;
        b.build()
    }
}
