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
    /// `/lit**`: starts with `lit`.
    Prefix(Box<str>),
    /// `lit**`: starts with `lit` or contains `/lit` (stored with the leading `/`).
    ElementPrefix(Box<str>),
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
        if is_literal(body) {
            return if anchored {
                Fast::Exact(body.into())
            } else {
                Fast::Tail(format!("/{body}").into())
            };
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
        if let Some(lit) = body.strip_suffix("**")
            && is_literal(lit)
        {
            return if anchored {
                Fast::Prefix(lit.into())
            } else {
                Fast::ElementPrefix(format!("/{lit}").into())
            };
        }
        Fast::Regex
    }
}

/// One include or exclude rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) include: bool,
    fast: Fast,
    regex: Regex,
}

impl Rule {
    /// Compiles a glob (already adjusted by the caller, e.g. `dir/` -> `dir/**`).
    pub(crate) fn new(include: bool, glob: &str, ignore_case: bool) -> Result<Rule, GlobError> {
        let t = glob::glob_to_regex(glob, ignore_case)?;
        let regex = glob::compile(&t)?;
        Ok(Rule {
            include,
            fast: Fast::classify(glob, ignore_case),
            regex,
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
        match &self.fast {
            Fast::Any => true,
            Fast::NoSlash => !path.contains('/'),
            Fast::Exact(lit) => path == &**lit,
            Fast::Tail(slash_lit) => path == &slash_lit[1..] || path.ends_with(&**slash_lit),
            Fast::NameSuffix(lit) => name.ends_with(&**lit),
            Fast::RootNameSuffix(lit) => path.len() == name.len() && name.ends_with(&**lit),
            Fast::Prefix(lit) => path.starts_with(&**lit),
            Fast::ElementPrefix(slash_lit) => {
                path.starts_with(&slash_lit[1..]) || path.contains(&**slash_lit)
            }
            Fast::Regex => self.regex.is_match(path),
        }
    }
}

/// An ordered rule list; the first rule that matches decides, no match means "included".
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleList {
    rules: Vec<Rule>,
}

impl RuleList {
    /// Appends a rule unless an identical one (same verdict and regex) is already present; the
    /// duplicate could never decide anything.
    pub(crate) fn push(&mut self, rule: Rule) {
        let dup = self
            .rules
            .iter()
            .any(|r| r.include == rule.include && r.regex.as_str() == rule.regex.as_str());
        if !dup {
            self.rules.push(rule);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
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
            "*", "**", "/**", "/*", "a", "/a", "a/b", "/a/b", "*.jpg", "/*.jpg", "a/**", "/a/**",
            "a**", "/a**", "", "/", "a/", "/a/b/", "*.d/", ".git", ".*",
        ];
        let paths = [
            "", "a", "b", "a/b", "x/a", "x/a/b", "xa/b", "a/b/c", "ab", "ba", "f.jpg", "d/f.jpg",
            "d/.jpg", "a/", "x/a/", "a/b/", "x/a/b/", ".git", "x/.git", "x.git", "a\nb", "a/\n",
            "x/a/\nb", "\n/f.jpg", "c.d/", "x/c.d/",
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
