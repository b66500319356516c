//! [`FilterSet`]: which files and directories an operation sees, with rclone's filter syntax
//! and semantics (`--include`, `--exclude`, `--filter`, `--*-from`, `--files-from`, ages, sizes,
//! `--max-depth`, `--ignore-case`), so a user's existing rclone filters mean the same here.

mod builder;
mod glob;
mod rules;
mod spec;
mod units;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use time::OffsetDateTime;

use crate::entry::Entry;
use crate::path::RemotePath;

pub use builder::{FilterBuilder, RuleKind};
pub use spec::FilterSpec;
pub use units::{AgeLimit, parse_age, parse_duration, parse_size};

use rules::RuleList;

/// A compiled, immutable set of filter rules and limits. Cloning is cheap (one `Arc`), so one set
/// can be shared by every task of an operation.
///
/// # Rules
///
/// Rules come from [`include`](FilterBuilder::include), [`include_from`](FilterBuilder::include_from),
/// [`exclude`](FilterBuilder::exclude), [`exclude_from`](FilterBuilder::exclude_from),
/// [`filter`](FilterBuilder::filter) (`+ glob` / `- glob` / `!`) and
/// [`filter_from`](FilterBuilder::filter_from) (files of such lines; `!` clears the rules so far,
/// lines starting with `#` or `;` are comments). As in rclone they are applied **by kind, in that
/// fixed order** (all includes, then excludes, then filters; within one kind in the order given).
/// The first rule that matches a path decides; a path no rule matches is included. Any
/// `include`/`include_from` adds a final "exclude everything" rule (a `+` filter does not).
///
/// ```
/// use cloudsync_core::{FilterSet, RemotePath};
/// let p = |s| RemotePath::new(s).unwrap();
///
/// let f = FilterSet::builder()
///     .filter("- secret*.jpg")
///     .filter("+ *.jpg")
///     .filter("+ /dir/**")
///     .filter("- *")
///     .build()?;
/// assert!(f.include_path(&p("photos/cat.jpg"), false));
/// assert!(!f.include_path(&p("photos/secret1.jpg"), false));
/// assert!(f.include_path(&p("dir/notes.txt"), false));
/// assert!(!f.include_path(&p("notes.txt"), false));
///
/// // `--include` implies `- **` at the end; excludes are applied after includes.
/// let f = FilterSet::builder().exclude("b.txt").include("*.txt").build()?;
/// assert!(f.include_path(&p("b.txt"), false));   // the include came first
/// assert!(!f.include_path(&p("c.png"), false));  // the implied exclude
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
///
/// # Globs
///
/// | syntax | meaning |
/// | --- | --- |
/// | `*` | any run of characters except `/` |
/// | `**` | any run of characters including `/` (`***` is an error) |
/// | `?` | one character except `/` |
/// | `[a-z]`, `[^0-9]`, `[[:alpha:]]` | a character class (regular-expression syntax) |
/// | `{a,b,{c,d}}` | alternatives, which may nest |
/// | `\*`, `\{`, `\d` | an escaped character, or a class such as `\d` |
/// | `{{regexp}}` | a regular expression |
/// | leading `/` | anchored at the root; otherwise the glob matches whole trailing path elements at any depth |
/// | trailing `/` | a directory rule (`- dir/` excludes the directory and everything below it) |
///
/// ```
/// use cloudsync_core::{FilterSet, RemotePath};
/// // Does `glob` match `path`? (An exclude rule alone excludes exactly what it matches.)
/// let inc = |glob: &str, path: &str| {
///     let f = FilterSet::builder().filter(&format!("- {glob}")).build().unwrap();
///     !f.include_path(&RemotePath::new(path).unwrap(), false)
/// };
/// assert!(inc("file.jpg", "directory/file.jpg"));
/// assert!(!inc("file.jpg", "directory/afile.jpg"));
/// assert!(!inc("/file.jpg", "directory/file.jpg"));
/// assert!(inc("*.{jpg,png}", "dir/file.png"));
/// assert!(inc("dir/**", "subdir/dir/subsubdir/anyfile"));
/// assert!(inc("*.t?t", "file.txt"));
/// assert!(inc("*.\\d\\d\\d", "file.012"));
/// assert!(inc("*.{{jpe?g}}", "dir/file.jpg"));
/// assert!(!inc("*.{{jpe?g}}", "dir/file.jpeeg"));
/// ```
///
/// # Directories
///
/// [`include_dir`](FilterSet::include_dir) answers whether a directory can hold anything
/// included, so a lister never lists excluded subtrees. As rclone does, directory rules are
/// derived from the file rules: `+ /a/b/**` implies the directories `/a/`, `/a/b/` (and
/// everything below `/a/b/`), `+ *.jpg` implies every directory, `- dir/` and `- dir/**` exclude
/// `dir` wherever it is, `- /**` excludes everything. When a glob is too hard to split (`{{re}}`,
/// `/` or `**` inside `{}`), every directory is looked into. A file is only included when every
/// directory above it is, so pruning never changes the result.
///
/// Like rclone, an unanchored include glob with a directory part only implies that directory
/// *name* (`dir/**` implies `dir/` wherever it is, but not the directories above it), so with a
/// catch-all exclude after it, `sub/dir/file` is not reached: anchor the glob (`/sub/dir/**`) or
/// use `**/dir/**`.
///
/// ```
/// use cloudsync_core::{FilterSet, RemotePath};
/// let p = |s| RemotePath::new(s).unwrap();
/// let f = FilterSet::builder().include("/a/b/**").build()?;
/// assert!(f.include_dir(&p("a")));
/// assert!(f.include_dir(&p("a/b/c")));
/// assert!(!f.include_dir(&p("x")));      // never listed
/// assert!(!f.include_dir(&p("a/c")));
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
///
/// # Other limits
///
/// `min_age`/`max_age` (files only; measured from the `now` captured when the set is built),
/// `min_size`/`max_size` (bytes; [`parse_size`] reads rclone's `50k`, `1G`...), `max_depth`
/// (1 = only the top-level entries), `ignore_case`, [`files_from`](FilterBuilder::files_from)
/// (exactly the listed files; used alone) and
/// [`exclude_hidden_and_underscore`](FilterBuilder::exclude_hidden_and_underscore).
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::{parse_duration, parse_size, FilterSet, RemotePath};
/// use cloudsync_core::deps::time::macros::datetime;
///
/// let now = datetime!(2024-06-01 12:00 UTC);
/// let f = FilterSet::builder()
///     .now(now)
///     .min_age(parse_duration("5m")?.unwrap())   // skip files still being written
///     .max_size(parse_size("1G")?.unwrap())
///     .exclude_hidden_and_underscore()
///     .build()?;
/// let p = |s| RemotePath::new(s).unwrap();
/// assert!(f.include_file(&p("in/order.xml"), 10, Some(datetime!(2024-06-01 11:00 UTC))));
/// assert!(!f.include_file(&p("in/order.xml"), 10, Some(datetime!(2024-06-01 11:58 UTC))));
/// assert!(!f.include_file(&p("in/_partial.xml"), 10, Some(datetime!(2024-06-01 11:00 UTC))));
/// assert!(!f.include_dir(&p(".git")));
///
/// // Contradictions are errors.
/// let e = FilterSet::builder().min_size(10).max_size(5).build().unwrap_err();
/// assert_eq!(e.kind(), cloudsync_core::ErrorKind::InvalidInput);
/// let e = FilterSet::builder().include("a{b").build().unwrap_err();
/// assert_eq!(e.message(), "--include \"a{b\": unclosed alternation `{` at 2");
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone)]
pub struct FilterSet {
    inner: Arc<Inner>,
}

struct Inner {
    file_rules: RuleList,
    dir_rules: RuleList,
    /// The directory rules can never exclude anything.
    dirs_never_excluded: bool,
    files_from: Option<FilesFrom>,
    modified_after: Option<OffsetDateTime>,
    modified_before: Option<OffsetDateTime>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    max_depth: Option<usize>,
    skip_hidden: bool,
    ignore_case: bool,
    now: OffsetDateTime,
    trivial: bool,
}

struct FilesFrom {
    /// Sorted, deduplicated.
    files: Vec<RemotePath>,
    /// Every directory above a listed file (not the root).
    dirs: HashSet<String>,
}

static EVERYTHING: LazyLock<FilterSet> = LazyLock::new(|| FilterSet {
    inner: Arc::new(Inner {
        file_rules: RuleList::default(),
        dir_rules: RuleList::default(),
        dirs_never_excluded: true,
        files_from: None,
        modified_after: None,
        modified_before: None,
        min_size: None,
        max_size: None,
        max_depth: None,
        skip_hidden: false,
        ignore_case: false,
        now: OffsetDateTime::UNIX_EPOCH,
        trivial: true,
    }),
});

fn is_hidden_name(name: &str) -> bool {
    name.starts_with(['.', '_'])
}

impl FilterSet {
    /// A builder for a new set.
    pub fn builder() -> FilterBuilder {
        FilterBuilder::new()
    }

    /// The set that includes everything ([`is_trivial`](Self::is_trivial) is true).
    pub fn everything() -> FilterSet {
        EVERYTHING.clone()
    }

    /// Whether this set includes everything: no rules, no age, size, depth or `files_from`
    /// limits. Callers can skip filtering altogether.
    pub fn is_trivial(&self) -> bool {
        self.inner.trivial
    }

    /// Whether the file at `path`, of `size` bytes, modified at `modtime`, is included.
    ///
    /// Applies (in this order) `max_depth`, `files_from`, hidden names, sizes, ages (a file with
    /// an unknown modtime fails any age limit), the rules, and the directory rules of every
    /// directory above `path`.
    pub fn include_file(
        &self,
        path: &RemotePath,
        size: u64,
        modtime: Option<OffsetDateTime>,
    ) -> bool {
        let f = &*self.inner;
        if f.trivial {
            return true;
        }
        if f.files_from.is_none() {
            if f.min_size.is_some_and(|min| size < min) || f.max_size.is_some_and(|max| size > max)
            {
                return false;
            }
            if f.modified_after.is_some() || f.modified_before.is_some() {
                let Some(t) = modtime else {
                    return false;
                };
                if f.modified_after.is_some_and(|after| t < after)
                    || f.modified_before.is_some_and(|before| t > before)
                {
                    return false;
                }
            }
        }
        self.include_file_path(path.as_str())
    }

    /// Rules, depth, hidden names and `files_from` for a file path.
    fn include_file_path(&self, path: &str) -> bool {
        let f = &*self.inner;
        if let Some(max) = f.max_depth
            && depth_of(path) > max
        {
            return false;
        }
        if let Some(ff) = &f.files_from {
            return ff.files.binary_search_by(|p| p.as_str().cmp(path)).is_ok();
        }
        if f.skip_hidden && path.split('/').any(is_hidden_name) {
            return false;
        }
        f.file_rules.include(path) && self.ancestors_included(path)
    }

    /// Whether the directory rules include every directory above `path` (`a/`, `a/b/`, ... of
    /// `a/b/c`).
    fn ancestors_included(&self, path: &str) -> bool {
        let f = &*self.inner;
        if f.dirs_never_excluded {
            return true;
        }
        path.match_indices('/')
            .all(|(i, _)| f.dir_rules.include(&path[..=i]))
    }

    /// [`include_file`](Self::include_file) for files, [`include_dir`](Self::include_dir) for
    /// directories.
    pub fn include_entry(&self, e: &Entry) -> bool {
        if e.is_dir() {
            self.include_dir(&e.path)
        } else {
            self.include_file(&e.path, e.size, e.modtime)
        }
    }

    /// Whether directory `dir` is included, i.e. may hold included files. `false` means the
    /// whole subtree can be skipped: it is never listed. The root is always included.
    ///
    /// A directory at exactly `max_depth` is included (it is an entry of the listing) but must
    /// not be listed itself; [`descend_into`](Self::descend_into) answers that.
    pub fn include_dir(&self, dir: &RemotePath) -> bool {
        let f = &*self.inner;
        if f.trivial || dir.is_root() {
            return true;
        }
        if let Some(max) = f.max_depth
            && dir.depth() > max
        {
            return false;
        }
        if let Some(ff) = &f.files_from {
            return ff.dirs.contains(dir.as_str());
        }
        if f.skip_hidden && dir.segments().any(is_hidden_name) {
            return false;
        }
        if f.dirs_never_excluded {
            return true;
        }
        let mut with_slash = String::with_capacity(dir.as_str().len() + 1);
        with_slash.push_str(dir.as_str());
        with_slash.push('/');
        with_slash
            .match_indices('/')
            .all(|(i, _)| f.dir_rules.include(&with_slash[..=i]))
    }

    /// Whether a lister should list the contents of `dir`: [`include_dir`](Self::include_dir)
    /// and `dir` is above `max_depth`.
    pub fn descend_into(&self, dir: &RemotePath) -> bool {
        self.inner.max_depth.is_none_or(|max| dir.depth() < max) && self.include_dir(dir)
    }

    /// The path rules only (depth, `files_from`, hidden names, include/exclude rules), without
    /// the age and size limits.
    pub fn include_path(&self, path: &RemotePath, is_dir: bool) -> bool {
        if is_dir {
            self.include_dir(path)
        } else {
            self.inner.trivial || self.include_file_path(path.as_str())
        }
    }

    /// The `max_depth` limit: 1 = only the entries of the top directory.
    pub fn max_depth(&self) -> Option<usize> {
        self.inner.max_depth
    }

    /// The `files_from` list (sorted, without duplicates), when one was given.
    pub fn files_from(&self) -> Option<&[RemotePath]> {
        self.inner.files_from.as_ref().map(|ff| ff.files.as_slice())
    }

    /// The instant ages are measured from.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.now
    }

    /// Whether any rule uses directory rules to prune listings (false when every directory is
    /// looked into anyway).
    pub fn prunes_directories(&self) -> bool {
        let f = &*self.inner;
        f.files_from.is_some() || f.skip_hidden || f.max_depth.is_some() || !f.dirs_never_excluded
    }

    /// The compiled rules and limits, one per line, like `rclone --dump filters`: limits, then
    /// `--- File filter rules ---` and `--- Directory filter rules ---` with one `+ regex` or
    /// `- regex` line per rule.
    pub fn dump(&self) -> String {
        let f = &*self.inner;
        let mut out = Vec::new();
        if let Some(t) = f.modified_after {
            out.push(format!(
                "Last-modified date must be equal or greater than: {t}"
            ));
        }
        if let Some(t) = f.modified_before {
            out.push(format!(
                "Last-modified date must be equal or less than: {t}"
            ));
        }
        if let Some(s) = f.min_size {
            out.push(format!("Minimum size is: {s} B"));
        }
        if let Some(s) = f.max_size {
            out.push(format!("Maximum size is: {s} B"));
        }
        if let Some(d) = f.max_depth {
            out.push(format!("Maximum depth is: {d}"));
        }
        if f.skip_hidden {
            out.push("Names starting with `.` or `_` are excluded".to_owned());
        }
        if let Some(ff) = &f.files_from {
            out.push(format!("Files from list: {} files", ff.files.len()));
        }
        out.push("--- File filter rules ---".to_owned());
        out.extend(f.file_rules.iter().map(|r| r.describe()));
        out.push("--- Directory filter rules ---".to_owned());
        out.extend(f.dir_rules.iter().map(|r| r.describe()));
        out.join("\n")
    }
}

fn depth_of(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.bytes().filter(|b| *b == b'/').count() + 1
    }
}

impl Default for FilterSet {
    fn default() -> Self {
        FilterSet::everything()
    }
}

impl fmt::Debug for FilterSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("FilterSet")
            .field(
                "file_rules",
                &i.file_rules
                    .iter()
                    .map(|r| r.describe())
                    .collect::<Vec<_>>(),
            )
            .field(
                "dir_rules",
                &i.dir_rules.iter().map(|r| r.describe()).collect::<Vec<_>>(),
            )
            .field(
                "files_from",
                &i.files_from.as_ref().map(|ff| ff.files.len()),
            )
            .field("modified_after", &i.modified_after)
            .field("modified_before", &i.modified_before)
            .field("min_size", &i.min_size)
            .field("max_size", &i.max_size)
            .field("max_depth", &i.max_depth)
            .field("skip_hidden", &i.skip_hidden)
            .field("ignore_case", &i.ignore_case)
            .finish()
    }
}
