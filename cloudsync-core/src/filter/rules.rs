//! Compiled rules: an ordered list where the first matching rule decides.
//!
//! Every rule keeps its regular expression (rclone's translation of the glob), and the common
//! shapes (`*.ext`, literal names, `dir/**`, `/**`) also get a string test that gives the same
//! answer without running the regex engine. (`.` matches `\n` in our regexes, so `**` really is
//! "any characters", which is what makes the string tests exact.)

use regex::Regex;

use super::glob::{self, GlobError};

/// A cheap test equivalent to a rule's regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fast {
    /// Matches every path (`*`, `**`, `/**`).
    Any,
    /// `/*`: a path without `/`.
    NoSlash,
    /// `/lit`: the whole path.
    Exact(Box<str>),
    /// `lit`: the path is `lit` or ends with `/lit` (stored with the leading `/`).
    Tail(Box<str>),
    /// `*lit` (no `/` in `lit`): the last element ends with `lit`.
    NameSuffix(Box<str>),
    /// `/*lit`: no `/` and ends with `lit`.
    RootNameSuffix(Box<str>),
    /// `lit*` (no `/` in `lit`): the last element starts with `lit`.
    NamePrefix(Box<str>),
    /// `/lit*`: no `/` and starts with `lit`.
    RootNamePrefix(Box<str>),
    /// `**lit` or `/**lit`: ends with `lit`.
    EndsWith(Box<str>),
    /// `**lit**`: contains `lit`.
    Contains(Box<str>),
    /// `/a**b`: starts with `a`, ends with `b`, and they do not overlap.
    PrefixSuffix(Box<str>, Box<str>),
    /// `a**b`: ends with `b`, and `a` starts a path element before it (`a` stored with a
    /// leading `/`).
    ElementPrefixSuffix(Box<str>, Box<str>),
    /// `x{a,b}y` with literal alternatives: any of the expansions.
    AnyOf(Box<[Fast]>),
    /// No shortcut: run the regular expression.
    Regex,
}

const GLOB_META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

fn is_literal(s: &str) -> bool {
    !s.contains(GLOB_META)
}

impl Fast {
    fn classify(glob: &str, ignore_case: bool) -> Fast {
        let (anchored, body) = match glob.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, glob),
        };
        match (anchored, body) {
            (false, "*") | (_, "**") => return Fast::Any,
            (true, "*") => return Fast::NoSlash,
            _ => {}
        }
        if ignore_case {
            return Fast::Regex;
        }
        if let Some(expansions) = expand_alternation(glob) {
            let parts: Vec<Fast> = expansions.iter().map(|g| Fast::simple(g)).collect();
            return if parts.contains(&Fast::Regex) {
                Fast::Regex
            } else {
                Fast::AnyOf(parts.into())
            };
        }
        Fast::simple(glob)
    }

    /// The shapes without `{}`.
    fn simple(glob: &str) -> Fast {
        let (anchored, body) = match glob.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, glob),
        };
        match (anchored, body) {
            (false, "*") | (_, "**") => return Fast::Any,
            (true, "*") => return Fast::NoSlash,
            _ => {}
        }
        if is_literal(body) {
            return if anchored {
                Fast::Exact(body.into())
            } else {
                Fast::Tail(format!("/{body}").into())
            };
        }
        // A leading `**` makes the anchor irrelevant: `(^|/).*` and `^.*` match the same.
        if let Some(rest) = body.strip_prefix("**") {
            if is_literal(rest) {
                return Fast::EndsWith(rest.into());
            }
            if let Some(mid) = rest.strip_suffix("**")
                && is_literal(mid)
            {
                return Fast::Contains(mid.into());
            }
            return Fast::Regex;
        }
        if let Some(lit) = body.strip_prefix('*')
            && is_literal(lit)
            && !lit.contains('/')
        {
            return if anchored {
                Fast::RootNameSuffix(lit.into())
            } else {
                Fast::NameSuffix(lit.into())
            };
        }
        if let Some(lit) = body.strip_suffix('*')
            && is_literal(lit)
            && !lit.is_empty()
            && !lit.contains('/')
        {
            return if anchored {
                Fast::RootNamePrefix(lit.into())
            } else {
                Fast::NamePrefix(lit.into())
            };
        }
        if let Some((a, b)) = body.split_once("**")
            && !a.is_empty()
            && is_literal(a)
            && is_literal(b)
        {
            return if anchored {
                Fast::PrefixSuffix(a.into(), b.into())
            } else {
                Fast::ElementPrefixSuffix(format!("/{a}").into(), b.into())
            };
        }
        Fast::Regex
    }

    #[inline]
    fn matches(&self, path: &str, name: &str, regex: &Regex) -> bool {
        match self {
            Fast::Any => true,
            Fast::NoSlash => !path.contains('/'),
            Fast::Exact(lit) => path == &**lit,
            Fast::Tail(slash_lit) => path == &slash_lit[1..] || path.ends_with(&**slash_lit),
            Fast::NameSuffix(lit) => name.ends_with(&**lit),
            Fast::RootNameSuffix(lit) => path.len() == name.len() && name.ends_with(&**lit),
            Fast::NamePrefix(lit) => name.starts_with(&**lit),
            Fast::RootNamePrefix(lit) => path.len() == name.len() && name.starts_with(&**lit),
            Fast::EndsWith(lit) => path.ends_with(&**lit),
            Fast::Contains(lit) => path.contains(&**lit),
            Fast::PrefixSuffix(a, b) => {
                path.len() >= a.len() + b.len() && path.starts_with(&**a) && path.ends_with(&**b)
            }
            Fast::ElementPrefixSuffix(slash_a, b) => {
                let Some(limit) = path.len().checked_sub(b.len()) else {
                    return false;
                };
                if !path.ends_with(&**b) {
                    return false;
                }
                // `a` must start an element and end before `b` starts: look for it in the part
                // before `b` (a char boundary, as the path ends with `b`).
                let head = &path[..limit];
                head.starts_with(&slash_a[1..]) || head.contains(&**slash_a)
            }
            Fast::AnyOf(parts) => parts.iter().any(|f| f.matches(path, name, regex)),
            Fast::Regex => regex.is_match(path),
        }
    }
}

/// Expands one `{a,b,..}` group of literal alternatives (`*.{jpg,png}` -> `*.jpg`, `*.png`);
/// `None` when the glob has no such group, more than one, or anything else that makes
/// expanding unsafe.
fn expand_alternation(glob: &str) -> Option<Vec<String>> {
    let open = glob.find('{')?;
    let close = open + glob[open..].find('}')?;
    let (before, inner, after) = (&glob[..open], &glob[open + 1..close], &glob[close + 1..]);
    let structural = ['{', '}', '[', ']', '\\'];
    if before.contains(structural) || after.contains(structural) || !is_literal(inner) {
        return None;
    }
    // `*{,x}*` must not become `**`.
    if before.ends_with('*') && after.starts_with('*') {
        return None;
    }
    Some(
        inner
            .split(',')
            .map(|alt| format!("{before}{alt}{after}"))
            .collect(),
    )
}

/// The bytes a matching path can start or end with (`None`: any).
type Bytes = Option<Vec<u8>>;

fn first_byte(s: &str) -> Bytes {
    s.as_bytes().first().map(|b| vec![*b])
}

fn last_byte(s: &str) -> Bytes {
    s.as_bytes().last().map(|b| vec![*b])
}

impl Fast {
    /// The first and last bytes of every (non-empty) path this shortcut matches.
    fn ends(&self) -> (Bytes, Bytes) {
        match self {
            Fast::Exact(lit) => (first_byte(lit), last_byte(lit)),
            Fast::Tail(slash_lit) => (None, last_byte(slash_lit)),
            Fast::NameSuffix(lit) | Fast::RootNameSuffix(lit) | Fast::EndsWith(lit) => {
                (None, last_byte(lit))
            }
            Fast::RootNamePrefix(lit) => (first_byte(lit), None),
            Fast::PrefixSuffix(a, b) => (first_byte(a), last_byte(b)),
            Fast::ElementPrefixSuffix(_, b) => (None, last_byte(b)),
            Fast::AnyOf(parts) => {
                let union = |sets: Vec<Bytes>| -> Bytes {
                    sets.into_iter().try_fold(Vec::new(), |mut acc, s| {
                        acc.extend(s?);
                        Some(acc)
                    })
                };
                let (firsts, lasts): (Vec<Bytes>, Vec<Bytes>) =
                    parts.iter().map(Fast::ends).unzip();
                (union(firsts), union(lasts))
            }
            Fast::Any | Fast::NoSlash | Fast::NamePrefix(_) | Fast::Contains(_) | Fast::Regex => {
                (None, None)
            }
        }
    }
}

/// First and last bytes a regex rule's paths must have, read off the glob: an anchored glob
/// starting with a plain character, a glob ending with one (not escaped).
fn glob_ends(glob: &str) -> (Bytes, Bytes) {
    let plain = |c: char| !GLOB_META.contains(&c);
    let first = match glob.strip_prefix('/') {
        Some(body) => body
            .chars()
            .next()
            .filter(|c| plain(*c))
            .and_then(|_| first_byte(body)),
        None => None,
    };
    let mut rev = glob.chars().rev();
    let last = match (rev.next(), rev.next()) {
        (Some(c), prev) if plain(c) && prev != Some('\\') => last_byte(glob),
        _ => None,
    };
    (first, last)
}

/// One include or exclude rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) include: bool,
    fast: Fast,
    regex: Regex,
    /// Bytes a matching path can start / end with (`None`: any).
    first: Bytes,
    last: Bytes,
}

impl Rule {
    /// Compiles a glob (already adjusted by the caller, e.g. `dir/` -> `dir/**`).
    pub(crate) fn new(include: bool, glob: &str, ignore_case: bool) -> Result<Rule, GlobError> {
        let t = glob::glob_to_regex(glob, ignore_case)?;
        let regex = glob::compile(&t)?;
        let fast = Fast::classify(glob, ignore_case);
        let (first, last) = match (&fast, ignore_case) {
            (Fast::Regex, false) => glob_ends(glob),
            (Fast::Regex, true) => (None, None),
            (f, _) => f.ends(),
        };
        Ok(Rule {
            include,
            fast,
            regex,
            first,
            last,
        })
    }

    /// The rule as rclone prints it with `--dump filters`: `+ regex` or `- regex`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} {}",
            if self.include { '+' } else { '-' },
            self.regex.as_str()
        )
    }

    /// The regular expression alone (for tests comparing the shortcuts with it).
    #[cfg(test)]
    pub(crate) fn regex_matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    #[inline]
    fn matches_fast(&self, path: &str, name: &str) -> bool {
        self.fast.matches(path, name, &self.regex)
    }
}

/// An ordered rule list; the first rule that matches decides, no match means "included".
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleList {
    rules: Vec<Rule>,
    /// For up to 128 rules: which rules can match a path by its first and by its last byte, so
    /// most rules are never looked at.
    dispatch: Option<Box<Dispatch>>,
}

#[derive(Debug, Clone)]
struct Dispatch {
    first: [u128; 256],
    last: [u128; 256],
}

impl Dispatch {
    fn add(&mut self, i: usize, rule: &Rule) {
        let bit = 1u128 << i;
        for (table, allowed) in [(&mut self.first, &rule.first), (&mut self.last, &rule.last)] {
            match allowed {
                None => table.iter_mut().for_each(|m| *m |= bit),
                Some(bytes) => bytes.iter().for_each(|b| table[usize::from(*b)] |= bit),
            }
        }
    }
}

impl RuleList {
    /// Appends a rule unless an identical one (same verdict and regex) is already present; the
    /// duplicate could never decide anything.
    pub(crate) fn push(&mut self, rule: Rule) {
        let dup = self
            .rules
            .iter()
            .any(|r| r.include == rule.include && r.regex.as_str() == rule.regex.as_str());
        if dup {
            return;
        }
        let i = self.rules.len();
        if i == 0 {
            self.dispatch = Some(Box::new(Dispatch {
                first: [0; 256],
                last: [0; 256],
            }));
        }
        if i < 128 {
            if let Some(d) = &mut self.dispatch {
                d.add(i, &rule);
            }
        } else {
            self.dispatch = None;
        }
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
        self.dispatch = None;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// Whether no path can ever be excluded: no exclude rule comes before one matching
    /// everything.
    pub(crate) fn never_excludes(&self) -> bool {
        for r in &self.rules {
            if !r.include {
                return false;
            }
            if r.fast == Fast::Any {
                return true;
            }
        }
        true
    }

    /// The verdict of the first matching rule, or `None` when no rule matches.
    #[inline]
    pub(crate) fn decide(&self, path: &str) -> Option<bool> {
        let name = match path.rfind('/') {
            Some(i) => &path[i + 1..],
            None => path,
        };
        let bytes = path.as_bytes();
        if let (Some(d), Some(&f), Some(&l)) = (&self.dispatch, bytes.first(), bytes.last()) {
            let mut candidates = d.first[usize::from(f)] & d.last[usize::from(l)];
            while candidates != 0 {
                let rule = &self.rules[candidates.trailing_zeros() as usize];
                if rule.matches_fast(path, name) {
                    return Some(rule.include);
                }
                candidates &= candidates - 1;
            }
            return None;
        }
        self.rules
            .iter()
            .find(|r| r.matches_fast(path, name))
            .map(|r| r.include)
    }

    /// Whether `path` passes (first match wins, unmatched is included).
    #[inline]
    pub(crate) fn include(&self, path: &str) -> bool {
        self.decide(path).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string shortcut must agree with the regular expression on every sample path.
    #[test]
    fn fast_paths_agree_with_regex() {
        let globs = [
            "*",
            "**",
            "/**",
            "/*",
            "a",
            "/a",
            "a/b",
            "/a/b",
            "*.jpg",
            "/*.jpg",
            "a/**",
            "/a/**",
            "a**",
            "/a**",
            "",
            "/",
            "a/",
            "/a/b/",
            "*.d/",
            ".git",
            ".*",
            "~*",
            "/~*",
            "a*",
            "/a*",
            "*.{log,out}",
            "/photos/**.{jpg,png}",
            "/src/**.rs",
            "**/build/**",
            "**.rs",
            "/**.rs",
            "a**b",
            "/a**b",
            "a/**/b",
            "a**/b",
            "*{,x}*",
            "**{,a}*",
            "{a,b/c}",
            "x{,y}",
            "a{b,c}*",
            "*.{jpg}",
            "/{a,b}**",
            "{a,b}{c,d}",
            "**b**",
            "/**/b/**",
            "ab**ba",
            "/ab**ba",
            "{,}",
            "a{,}b",
            "b/**/c",
        ];
        let paths = [
            "",
            "a",
            "b",
            "a/b",
            "x/a",
            "x/a/b",
            "xa/b",
            "a/b/c",
            "ab",
            "ba",
            "f.jpg",
            "d/f.jpg",
            "d/.jpg",
            "a/",
            "x/a/",
            "a/b/",
            "x/a/b/",
            ".git",
            "x/.git",
            "x.git",
            "a\nb",
            "a/\n",
            "x/a/\nb",
            "\n/f.jpg",
            "c.d/",
            "x/c.d/",
            "~lock",
            "d/~x",
            "a.log",
            "d/a.out",
            "photos/a/b.jpg",
            "photos/b.png",
            "x/photos/b.png",
            "src/x.rs",
            "a/src/x.rs",
            "srcx.rs",
            "x/build/y",
            "build/y",
            "x/build",
            "aab",
            "aba",
            "abba",
            "x/aba",
            "x/ab/ba",
            "bab/ab",
            "b/c",
            "x/b/y/c",
            "ac",
            "x/xy",
            "abc",
            "bd",
            "ad",
            "x",
            "xy",
            "a/x/b",
        ];
        for g in globs {
            let rule = Rule::new(true, g, false).unwrap();
            for p in paths {
                let mut list = RuleList::default();
                list.push(rule.clone());
                assert_eq!(
                    list.decide(p).is_some(),
                    rule.regex.is_match(p),
                    "glob {g:?} path {p:?} fast {:?}",
                    rule.fast
                );
            }
        }
    }
}
