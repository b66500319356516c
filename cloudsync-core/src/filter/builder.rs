//! [`FilterBuilder`]: collects rules and limits, then compiles them into a [`FilterSet`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::glob::{self, GlobError};
use super::rules::{Rule, RuleList};
use super::units::AgeLimit;
use super::{FilesFrom, FilterSet, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;

/// What a list of rules given as text means, for [`FilterBuilder::add_rules_from_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RuleKind {
    /// Every line is an include glob (like `--include-from`).
    Include,
    /// Every line is an exclude glob (like `--exclude-from`).
    Exclude,
    /// Every line is `+ glob`, `- glob` or `!` (like `--filter-from`).
    Filter,
}

/// rclone's fixed processing order: all includes, then excludes, then filters, whatever order
/// the flags were given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Include,
    IncludeFrom,
    Exclude,
    ExcludeFrom,
    Filter,
    FilterFrom,
}

impl Slot {
    fn flag(self) -> &'static str {
        match self {
            Slot::Include => "--include",
            Slot::IncludeFrom => "--include-from",
            Slot::Exclude => "--exclude",
            Slot::ExcludeFrom => "--exclude-from",
            Slot::Filter => "--filter",
            Slot::FilterFrom => "--filter-from",
        }
    }

    fn is_include(self) -> bool {
        matches!(self, Slot::Include | Slot::IncludeFrom)
    }
}

#[derive(Debug, Clone)]
enum Source {
    /// One pattern or rule, used as given.
    One(String),
    /// A file of lines, read when the set is built.
    File(PathBuf),
    /// Lines given as text.
    Text(String),
}

#[derive(Debug, Clone)]
enum FilesFromSource {
    File(PathBuf),
    List(Vec<String>),
    Text(String),
}

/// Collects filter rules and limits; [`build`](FilterBuilder::build) checks and compiles them.
///
/// Setters take `&mut self` and return `&mut Self` so they chain; nothing is checked (and no file
/// is read) until `build`. See [`FilterSet`] for the semantics and examples.
#[derive(Clone, Default)]
pub struct FilterBuilder {
    rules: Vec<(Slot, Source)>,
    files_from: Vec<FilesFromSource>,
    min_age: Option<AgeLimit>,
    max_age: Option<AgeLimit>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    max_depth: Option<usize>,
    ignore_case: bool,
    now: Option<OffsetDateTime>,
    skip_hidden: bool,
}

impl fmt::Debug for FilterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterBuilder")
            .field("rules", &self.rules)
            .field("files_from", &self.files_from)
            .field("min_age", &self.min_age)
            .field("max_age", &self.max_age)
            .field("min_size", &self.min_size)
            .field("max_size", &self.max_size)
            .field("max_depth", &self.max_depth)
            .field("ignore_case", &self.ignore_case)
            .field("skip_hidden", &self.skip_hidden)
            .finish_non_exhaustive()
    }
}

impl FilterBuilder {
    /// An empty builder (everything included).
    pub fn new() -> Self {
        Self::default()
    }

    /// `--include GLOB`: include matching files; any include adds a final "exclude everything".
    pub fn include(&mut self, glob: &str) -> &mut Self {
        self.rules
            .push((Slot::Include, Source::One(glob.to_owned())));
        self
    }

    /// `--exclude GLOB`: exclude matching files (`dir/` excludes a whole directory).
    pub fn exclude(&mut self, glob: &str) -> &mut Self {
        self.rules
            .push((Slot::Exclude, Source::One(glob.to_owned())));
        self
    }

    /// `--filter RULE`: `+ GLOB` includes, `- GLOB` excludes, `!` clears the rules so far.
    pub fn filter(&mut self, rule: &str) -> &mut Self {
        self.rules
            .push((Slot::Filter, Source::One(rule.to_owned())));
        self
    }

    /// `--include-from FILE`: one include glob per line (`#`/`;` comments, blank lines skipped).
    pub fn include_from(&mut self, file: &Path) -> &mut Self {
        self.rules
            .push((Slot::IncludeFrom, Source::File(file.to_owned())));
        self
    }

    /// `--exclude-from FILE`: one exclude glob per line.
    pub fn exclude_from(&mut self, file: &Path) -> &mut Self {
        self.rules
            .push((Slot::ExcludeFrom, Source::File(file.to_owned())));
        self
    }

    /// `--filter-from FILE`: one `+ GLOB`, `- GLOB` or `!` per line.
    pub fn filter_from(&mut self, file: &Path) -> &mut Self {
        self.rules
            .push((Slot::FilterFrom, Source::File(file.to_owned())));
        self
    }

    /// Adds lines as if read from an `--include-from`, `--exclude-from` or `--filter-from` file.
    pub fn add_rules_from_str(&mut self, kind: RuleKind, text: &str) -> &mut Self {
        let slot = match kind {
            RuleKind::Include => Slot::IncludeFrom,
            RuleKind::Exclude => Slot::ExcludeFrom,
            RuleKind::Filter => Slot::FilterFrom,
        };
        self.rules.push((slot, Source::Text(text.to_owned())));
        self
    }

    /// `--files-from FILE`: only the files listed (one path per line, relative to the root;
    /// leading/trailing `/` and surrounding whitespace ignored, `#`/`;` comments). Cannot be
    /// combined with rules, age or size limits.
    pub fn files_from(&mut self, file: &Path) -> &mut Self {
        self.files_from.push(FilesFromSource::File(file.to_owned()));
        self
    }

    /// Like [`files_from`](Self::files_from) with the file's text given directly (the same
    /// comment and whitespace processing).
    pub fn files_from_str(&mut self, text: &str) -> &mut Self {
        self.files_from.push(FilesFromSource::Text(text.to_owned()));
        self
    }

    /// Like [`files_from`](Self::files_from) with the paths given directly (no comment or
    /// whitespace processing; leading/trailing `/` ignored, empty entries skipped).
    pub fn files_from_list(&mut self, paths: Vec<String>) -> &mut Self {
        self.files_from.push(FilesFromSource::List(paths));
        self
    }

    /// `--min-age`: only files modified at least this long before `now`.
    pub fn min_age(&mut self, age: Duration) -> &mut Self {
        self.min_age = Some(AgeLimit::Relative(age));
        self
    }

    /// `--max-age`: only files modified at most this long before `now`.
    pub fn max_age(&mut self, age: Duration) -> &mut Self {
        self.max_age = Some(AgeLimit::Relative(age));
        self
    }

    /// `--min-age` from [`parse_age`](super::parse_age) (relative or absolute; `None` = off).
    pub fn min_age_limit(&mut self, age: Option<AgeLimit>) -> &mut Self {
        self.min_age = age;
        self
    }

    /// `--max-age` from [`parse_age`](super::parse_age) (relative or absolute; `None` = off).
    pub fn max_age_limit(&mut self, age: Option<AgeLimit>) -> &mut Self {
        self.max_age = age;
        self
    }

    /// `--min-size`: only files of at least this many bytes.
    pub fn min_size(&mut self, bytes: u64) -> &mut Self {
        self.min_size = Some(bytes);
        self
    }

    /// `--max-size`: only files of at most this many bytes.
    pub fn max_size(&mut self, bytes: u64) -> &mut Self {
        self.max_size = Some(bytes);
        self
    }

    /// `--max-depth`: 1 = only the entries of the top directory, 2 = one level below too, ...
    pub fn max_depth(&mut self, depth: usize) -> &mut Self {
        self.max_depth = Some(depth);
        self
    }

    /// `--ignore-case`: match every glob case-insensitively.
    pub fn ignore_case(&mut self, yes: bool) -> &mut Self {
        self.ignore_case = yes;
        self
    }

    /// The instant ages are measured from (default: the time `build` runs).
    pub fn now(&mut self, now: OffsetDateTime) -> &mut Self {
        self.now = Some(now);
        self
    }

    /// Skips every file and directory whose name starts with `.` or `_`, at any depth, before
    /// any other rule is looked at (for drop folders: hidden files and names like `_tmp` are
    /// still being written or are not meant for processing).
    pub fn exclude_hidden_and_underscore(&mut self) -> &mut Self {
        self.skip_hidden = true;
        self
    }

    /// Reads the rule and list files, checks every pattern and limit, and compiles the set.
    ///
    /// Errors are of kind [`ErrorKind::InvalidInput`] and name the flag, the pattern and the
    /// 1-based position of the problem, e.g. `--include "a{b": unclosed alternation `{` at 2`.
    pub fn build(&self) -> Result<FilterSet> {
        let now = self.now.unwrap_or_else(OffsetDateTime::now_utc);
        let mut compiler = Compiler {
            ignore_case: self.ignore_case,
            file_rules: RuleList::default(),
            dir_rules: RuleList::default(),
        };
        let mut rules: Vec<&(Slot, Source)> = self.rules.iter().collect();
        rules.sort_by_key(|(slot, _)| *slot); // stable: keeps the order within one kind
        let mut implicit_exclude = false;
        for (slot, source) in rules {
            implicit_exclude |= slot.is_include();
            compiler.add_source(*slot, source)?;
        }
        if implicit_exclude {
            compiler
                .add(false, "/**")
                .map_err(|e| invalid("--include", "/**", e))?;
        }

        let modified_after = self.max_age.map(|a| a.cutoff(now));
        let modified_before = self.min_age.map(|a| a.cutoff(now));
        if let (Some(after), Some(before)) = (modified_after, modified_before)
            && before < after
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--min-age ({}) can't be larger than --max-age ({}): no file can match",
                    describe_age(self.min_age),
                    describe_age(self.max_age)
                ),
            ));
        }
        if let (Some(min), Some(max)) = (self.min_size, self.max_size)
            && min > max
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("--min-size ({min} bytes) can't be larger than --max-size ({max} bytes)"),
            ));
        }

        let files_from = if self.files_from.is_empty() {
            None
        } else {
            let others = !compiler.file_rules.is_empty()
                || !compiler.dir_rules.is_empty()
                || self.min_age.is_some()
                || self.max_age.is_some()
                || self.min_size.is_some()
                || self.max_size.is_some()
                || self.skip_hidden;
            if others {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "--files-from overrides all other filters (rules, ages, sizes): it must be \
                     used alone (--max-depth is allowed)",
                ));
            }
            Some(self.read_files_from()?)
        };

        let dirs_never_excluded = compiler.dir_rules.never_excludes();
        let trivial = compiler.file_rules.is_empty()
            && compiler.dir_rules.is_empty()
            && files_from.is_none()
            && modified_after.is_none()
            && modified_before.is_none()
            && self.min_size.is_none()
            && self.max_size.is_none()
            && self.max_depth.is_none()
            && !self.skip_hidden;
        Ok(FilterSet {
            inner: Arc::new(Inner {
                file_rules: compiler.file_rules,
                dir_rules: compiler.dir_rules,
                dirs_never_excluded,
                files_from,
                modified_after,
                modified_before,
                min_size: self.min_size,
                max_size: self.max_size,
                max_depth: self.max_depth,
                skip_hidden: self.skip_hidden,
                ignore_case: self.ignore_case,
                now,
                trivial,
            }),
        })
    }

    fn read_files_from(&self) -> Result<FilesFrom> {
        let mut files = Vec::new();
        for source in &self.files_from {
            match source {
                FilesFromSource::File(path) => {
                    let label = format!("--files-from {:?}", path.display().to_string());
                    let text = read_text(path, &label)?;
                    for (n, line) in rule_lines(&text) {
                        files.push(files_from_entry(line, || format!("{label} line {n}"))?);
                    }
                }
                FilesFromSource::Text(text) => {
                    for (n, line) in rule_lines(text) {
                        files.push(files_from_entry(line, || format!("--files-from line {n}"))?);
                    }
                }
                FilesFromSource::List(list) => {
                    for (i, line) in list.iter().enumerate() {
                        files.push(files_from_entry(line, || {
                            format!("--files-from entry {}", i + 1)
                        })?);
                    }
                }
            }
        }
        let mut files: Vec<RemotePath> = files.into_iter().flatten().collect();
        files.sort();
        files.dedup();
        let mut dirs = HashSet::new();
        for f in &files {
            let mut p = f.parent();
            while let Some(d) = p {
                if d.is_root() || !dirs.insert(d.as_str().to_owned()) {
                    break;
                }
                p = d.parent();
            }
        }
        Ok(FilesFrom { files, dirs })
    }
}

fn files_from_entry(line: &str, label: impl Fn() -> String) -> Result<Option<RemotePath>> {
    let trimmed = line.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    RemotePath::new(trimmed).map(Some).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{}: {}", label(), e.message()),
        )
    })
}

fn describe_age(a: Option<AgeLimit>) -> String {
    match a {
        None => "off".to_owned(),
        Some(AgeLimit::Relative(d)) => format!("{d:?}"),
        Some(AgeLimit::Absolute(t)) => t.to_string(),
    }
}

fn invalid(flag: &str, pattern: &str, e: GlobError) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{flag} {pattern:?}: {} at {}", e.message, e.pos),
    )
}

fn read_text(path: &Path, label: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        let kind = Error::from(std::io::Error::from(e.kind())).kind();
        Error::new(kind, format!("{label}: cannot read: {e}")).with_source(e)
    })
}

/// The lines of a rules file rclone looks at: trimmed, without blanks and `#`/`;` comments,
/// with their 1-based line numbers.
fn rule_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

struct Compiler {
    ignore_case: bool,
    file_rules: RuleList,
    dir_rules: RuleList,
}

impl Compiler {
    fn add_source(&mut self, slot: Slot, source: &Source) -> Result<()> {
        let flag = slot.flag();
        let is_filter = matches!(slot, Slot::Filter | Slot::FilterFrom);
        let include = slot.is_include();
        let mut one = |text: &str, label: &str| -> Result<()> {
            if is_filter {
                self.add_rule(text).map_err(|e| invalid(label, text, e))
            } else {
                self.add(include, text).map_err(|e| invalid(label, text, e))
            }
        };
        match source {
            Source::One(text) => one(text, flag),
            Source::Text(text) => {
                for (n, line) in rule_lines(text) {
                    one(line, &format!("{flag} (text) line {n}"))?;
                }
                Ok(())
            }
            Source::File(path) => {
                let label = format!("{flag} {:?}", path.display().to_string());
                let text = read_text(path, &label)?;
                for (n, line) in rule_lines(&text) {
                    one(line, &format!("{label} line {n}"))?;
                }
                Ok(())
            }
        }
    }

    /// One `+ glob`, `- glob` or `!` rule; error positions count from the rule's first
    /// character.
    fn add_rule(&mut self, rule: &str) -> Result<(), GlobError> {
        if rule == "!" {
            self.file_rules.clear();
            self.dir_rules.clear();
            return Ok(());
        }
        let shift = |e: GlobError| GlobError {
            pos: e.pos + 2,
            ..e
        };
        if let Some(glob) = rule.strip_prefix("+ ") {
            self.add(true, glob).map_err(shift)
        } else if let Some(glob) = rule.strip_prefix("- ") {
            self.add(false, glob).map_err(shift)
        } else {
            Err(GlobError {
                message: "malformed rule: expected `+ glob`, `- glob` or `!`".to_owned(),
                pos: 1,
            })
        }
    }

    /// rclone's `Filter.Add`: a glob ending in `/` is a directory rule (excluding `dir/` excludes
    /// `dir/**`), a glob containing `**` is both a file and a directory rule, and include rules
    /// (and `*`) also add the directory rules needed to reach the files they match.
    fn add(&mut self, include: bool, glob: &str) -> Result<(), GlobError> {
        let mut glob = glob.to_owned();
        let mut is_dir = glob.ends_with('/');
        let mut is_file = !is_dir;
        if is_dir && !include {
            glob.push_str("**");
        }
        if glob.contains("**") {
            is_dir = true;
            is_file = true;
        }
        let rule = Rule::new(include, &glob, self.ignore_case)?;
        if is_file {
            if include || glob == "*" {
                for dir_glob in glob::dir_globs(&glob) {
                    if dir_glob == "/" {
                        continue; // the root is always listed
                    }
                    // A directory glob cut out of a valid glob can be invalid on its own
                    // (`a[/]b` gives `a[/`): then any directory may hold a match.
                    let dir_rule = Rule::new(include, &dir_glob, self.ignore_case)
                        .or_else(|_| Rule::new(include, "/**", self.ignore_case))?;
                    self.dir_rules.push(dir_rule);
                }
            }
            self.file_rules.push(rule.clone());
        }
        if is_dir {
            self.dir_rules.push(rule);
        }
        Ok(())
    }
}
