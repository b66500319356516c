//! rclone glob syntax translated to regular-expression source, and the directory globs implied
//! by a file glob.
//!
//! The translation follows rclone's documented rules (`*` stays within one path element, `**`
//! crosses `/`, `?` is one non-`/` character, `[...]` classes and `\` escapes are regular
//! expression syntax, `{a,b}` alternation may nest, `{{re}}` embeds a regular expression, a
//! leading `/` anchors at the root, otherwise the glob matches whole trailing path elements).
//! Errors carry the 1-based character position of the offending character.

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

/// A glob that cannot be translated: what is wrong and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GlobError {
    pub(crate) message: String,
    pub(crate) pos: usize,
}

impl GlobError {
    fn new(message: impl Into<String>, pos: usize) -> Self {
        GlobError {
            message: message.into(),
            pos,
        }
    }
}

/// Regular-expression source for `glob` (anchored as rclone anchors it), plus the pieces copied
/// verbatim into it so a compile failure can be blamed on one of them.
#[derive(Debug, Clone)]
pub(crate) struct Translated {
    pub(crate) regex: String,
    /// `(position, standalone regex)` for every class, escape and `{{regexp}}` section.
    pub(crate) raw_parts: Vec<(usize, String)>,
}

/// Translates an rclone path glob into regular-expression source.
pub(crate) fn glob_to_regex(glob: &str, ignore_case: bool) -> Result<Translated, GlobError> {
    let mut re = String::with_capacity(glob.len() * 2 + 8);
    let mut raw_parts = Vec::new();
    if ignore_case {
        re.push_str("(?i)");
    }
    let mut chars: Vec<char> = glob.chars().collect();
    // Position of chars[0] in the glob as the user wrote it (1-based).
    let mut base = 1;
    if chars.first() == Some(&'/') {
        chars.remove(0);
        base = 2;
        re.push('^');
    } else {
        re.push_str("(^|/)");
    }

    let mut stars = 0usize;
    let mut star_pos = 0usize;
    // Positions of the `{` that are open (for "unclosed alternation" messages).
    let mut braces: Vec<usize> = Vec::new();
    let mut in_brackets = 0usize;
    let mut bracket_start = (0usize, 0usize); // (glob position, byte offset in `re`)
    let mut slashed = false;
    let mut in_regexp = false;
    let mut regexp_start = (0usize, 0usize);
    let mut in_regexp_end = false;
    let mut prev = '\0';

    let flush_stars = |re: &mut String, stars: &mut usize, star_pos: usize| {
        let n = std::mem::take(stars);
        match n {
            0 => Ok(()),
            1 => {
                re.push_str("[^/]*");
                Ok(())
            }
            2 => {
                re.push_str(".*");
                Ok(())
            }
            _ => Err(GlobError::new(
                format!("too many stars `{}`", "*".repeat(n)),
                star_pos,
            )),
        }
    };

    for (i, &c) in chars.iter().enumerate() {
        let pos = base + i;
        let last = prev;
        prev = c;
        if slashed {
            slashed = false;
            if c.is_ascii_alphanumeric() {
                // `\d`, `\w`, `\s`...: regular-expression escapes, copied as they are.
                re.push('\\');
                re.push(c);
                raw_parts.push((pos - 1, format!("\\{c}")));
            } else {
                re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
            }
            continue;
        }
        if in_regexp_end {
            if c == '}' {
                // `}}}`: the regexp takes the longest run, the last `}}` closes it.
                re.pop();
                re.push_str("})");
                if let Some(part) = raw_parts.last_mut() {
                    part.1.pop();
                    part.1.push_str("})");
                }
                continue;
            }
            in_regexp_end = false;
        }
        if in_regexp {
            if c == '}' && last == '}' {
                in_regexp = false;
                in_regexp_end = true;
                re.pop();
                re.push(')');
                let body = re.get(regexp_start.1..).unwrap_or_default().to_owned();
                raw_parts.push((regexp_start.0, body));
            } else {
                re.push(c);
            }
            continue;
        }
        if c != '*' {
            flush_stars(&mut re, &mut stars, star_pos)?;
        }
        if in_brackets > 0 {
            re.push(c);
            if c == '[' {
                in_brackets += 1;
            } else if c == ']' {
                in_brackets -= 1;
                if in_brackets == 0 {
                    // rclone hands this text to Go's regexp: give it the same meaning here.
                    let class = go_fragment(re.get(bracket_start.1..).unwrap_or_default());
                    re.truncate(bracket_start.1);
                    re.push_str(&class);
                    raw_parts.push((bracket_start.0, class));
                }
            }
            continue;
        }
        match c {
            '\\' => slashed = true,
            '*' => {
                if stars == 0 {
                    star_pos = pos;
                }
                stars += 1;
            }
            '?' => re.push_str("[^/]"),
            '[' => {
                bracket_start = (pos, re.len());
                re.push('[');
                in_brackets = 1;
            }
            ']' => return Err(GlobError::new("unmatched `]`", pos)),
            '{' => {
                if !braces.is_empty() && last == '{' {
                    // `{{` opens a raw regular expression; the `(` written for the first `{`
                    // wraps it.
                    braces.pop();
                    in_regexp = true;
                    regexp_start = (pos - 1, re.len() - 1);
                } else {
                    braces.push(pos);
                    re.push('(');
                }
            }
            '}' => {
                if braces.pop().is_none() {
                    return Err(GlobError::new("unmatched `}`", pos));
                }
                re.push(')');
            }
            ',' if !braces.is_empty() => re.push('|'),
            _ => {
                let mut buf = [0u8; 4];
                re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
            }
        }
    }
    flush_stars(&mut re, &mut stars, star_pos)?;
    if slashed {
        return Err(GlobError::new(
            "dangling escape `\\`",
            base + chars.len() - 1,
        ));
    }
    if in_brackets > 0 {
        return Err(GlobError::new(
            "unclosed character class `[`",
            bracket_start.0,
        ));
    }
    if in_regexp {
        return Err(GlobError::new("unclosed regexp `{{`", regexp_start.0));
    }
    if let Some(&pos) = braces.first() {
        return Err(GlobError::new("unclosed alternation `{`", pos));
    }
    re.push('$');
    Ok(Translated {
        regex: re,
        raw_parts,
    })
}

/// Go (RE2) regular-expression text from a glob's bracket section, rewritten so that the Rust
/// `regex` crate reads it as Go does: inside a class `[`, `&`, `~` and `-` outside a range are
/// literal characters (in Rust they open nested classes and set operations), and a class ends
/// at its first `]` (so `[[]1]` is the class `[[]` followed by `1]`, matching `[1]`).
fn go_fragment(raw: &str) -> String {
    let c: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len() + 4);
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '[' => match go_class(&c, i) {
                Some((class, next)) => {
                    out.push_str(&class);
                    i = next;
                    continue;
                }
                None => out.push_str("\\["),
            },
            ']' => out.push_str("\\]"),
            '\\' => {
                out.push('\\');
                if let Some(n) = c.get(i + 1) {
                    out.push(*n);
                    i += 1;
                }
            }
            ch => out.push(ch),
        }
        i += 1;
    }
    out
}

/// One Go character class starting at `c[start] == '['`, as Rust class text, and the index
/// after it; `None` when it does not close.
fn go_class(c: &[char], start: usize) -> Option<(String, usize)> {
    let mut i = start + 1;
    let mut out = String::from("[");
    if c.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let ch = *c.get(i)?;
        if ch == ']' && !first {
            out.push(']');
            return Some((out, i + 1));
        }
        first = false;
        if ch == '[' && c.get(i + 1) == Some(&':') {
            // A POSIX class such as `[:alpha:]` means the same in both.
            let end = (i + 2..c.len().saturating_sub(1)).find(|&j| c[j] == ':' && c[j + 1] == ']');
            if let Some(end) = end {
                out.extend(&c[i..end + 2]);
                i = end + 2;
                continue;
            }
        }
        let (lo, next) = class_item(c, i)?;
        i = next;
        if c.get(i) == Some(&'-') && c.get(i + 1).is_some_and(|&x| x != ']') {
            let (hi, next) = class_item(c, i + 1)?;
            out.push_str(&lo);
            out.push('-');
            out.push_str(&hi);
            i = next;
        } else {
            out.push_str(&lo);
        }
    }
}

/// One character (or escape) inside a class, escaped for Rust where Go reads it literally.
fn class_item(c: &[char], i: usize) -> Option<(String, usize)> {
    let ch = *c.get(i)?;
    if ch == '\\' {
        let n = *c.get(i + 1)?;
        return Some((format!("\\{n}"), i + 2));
    }
    let s = match ch {
        '[' | ']' | '&' | '~' | '-' => format!("\\{ch}"),
        _ => ch.to_string(),
    };
    Some((s, i + 1))
}

/// Compiles translated source; a failure is blamed on the first raw part that does not compile
/// on its own (or on position 1).
///
/// `.` matches `\n` too, so `**` is "any characters" even in names holding a newline (rclone's Go
/// regexps stop `**` at a newline).
pub(crate) fn compile(t: &Translated) -> Result<Regex, GlobError> {
    RegexBuilder::new(&t.regex)
        .dot_matches_new_line(true)
        .build()
        .map_err(|e| {
            let pos = t
                .raw_parts
                .iter()
                .find(|(_, part)| Regex::new(part).is_err())
                .map_or(1, |(pos, _)| *pos);
            GlobError::new(format!("invalid regular expression: {}", one_line(&e)), pos)
        })
}

fn one_line(e: &regex::Error) -> String {
    let s = e.to_string();
    // regex's messages are multi-line with a caret diagram; keep the last line (the reason).
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Globs rclone cannot split into directory globs: `/` or `**` inside `{}`, `{{regexp}}`, and
/// nested braces.
static TOO_HARD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(\{[^{}]*(\*\*|/)[^{}]*\})|\{\{|\}\}|\{[^{}]*\{").ok());

/// The directory globs (each ending in `/`) a directory must match to possibly hold a file
/// matching `glob`, deepest first; `["/**"]` (every directory) when that cannot be worked out.
///
/// `/a/b/*.jpg` gives `["/a/b/", "/a/", "/"]`; `a/**/c` gives `["a/**/", "a/"]`.
pub(crate) fn dir_globs(glob: &str) -> Vec<String> {
    let too_hard = TOO_HARD.as_ref().is_none_or(|re| re.is_match(glob));
    if too_hard {
        return vec!["/**".to_owned()];
    }
    // Squash runs of `/`.
    let mut g = String::with_capacity(glob.len());
    for c in glob.chars() {
        if c == '/' && g.ends_with('/') {
            continue;
        }
        g.push(c);
    }
    let mut out: Vec<String> = Vec::new();
    loop {
        let slash = g.rfind('/');
        let stars = g.rfind("**");
        let (cut, what) = match (slash, stars) {
            (s, Some(j)) if s.is_none_or(|s| j > s) => (j, "**"),
            (Some(s), _) => (s, ""),
            _ => {
                if out.is_empty() {
                    out.push("/**".to_owned());
                }
                break;
            }
        };
        g.truncate(cut);
        let dir = format!("{g}{what}/");
        if out.last() != Some(&dir) {
            out.push(dir);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(glob: &str) -> Result<String, GlobError> {
        glob_to_regex(glob, false).map(|t| t.regex)
    }

    /// rclone's own translation table (fs/filter/glob_test.go), as data.
    #[test]
    fn translation_matches_rclone_table() {
        for (glob, want) in [
            ("", "(^|/)$"),
            ("potato", "(^|/)potato$"),
            ("potato,sausage", "(^|/)potato,sausage$"),
            ("/potato", "^potato$"),
            ("potato?sausage", "(^|/)potato[^/]sausage$"),
            ("potat[oa]", "(^|/)potat[oa]$"),
            ("potat[a-z]or", "(^|/)potat[a-z]or$"),
            ("potat[[:alpha:]]or", "(^|/)potat[[:alpha:]]or$"),
            ("*.jpg", "(^|/)[^/]*\\.jpg$"),
            ("a{b,c,d}e", "(^|/)a(b|c|d)e$"),
            ("potato**", "(^|/)potato.*$"),
            ("potato**sausage", "(^|/)potato.*sausage$"),
            ("*.p[lm]", "(^|/)[^/]*\\.p[lm]$"),
            ("[\\[\\]]", "(^|/)[\\[\\]]$"),
            ("*.{jpg,png,gif}", "(^|/)[^/]*\\.(jpg|png|gif)$"),
            ("a\\*b", "(^|/)a\\*b$"),
            ("a\\\\b", "(^|/)a\\\\b$"),
            ("a{{.*}}b", "(^|/)a(.*)b$"),
            ("{{regexp}}", "(^|/)(regexp)$"),
            ("\\{{{regexp}}", "(^|/)\\{(regexp)$"),
            ("/{{regexp}}", "^(regexp)$"),
            ("/{{\\d{8}}}", "^(\\d{8})$"),
            ("/{{\\}}}", "^(\\})$"),
            ("{{(?i)regexp}}", "(^|/)((?i)regexp)$"),
            ("a{b,{c,d}}e", "(^|/)a(b|(c|d))e$"),
            // Go reads these characters literally inside a class; Rust would not.
            ("[a&&b]*", "(^|/)[a\\&\\&b][^/]*$"),
            ("[a~~b]", "(^|/)[a\\~\\~b]$"),
            ("[[]1].txt", "(^|/)[\\[]1\\]\\.txt$"),
        ] {
            assert_eq!(re(glob).as_deref(), Ok(want), "{glob}");
        }
        assert_eq!(
            glob_to_regex("*.jpg", true).unwrap().regex,
            "(?i)(^|/)[^/]*\\.jpg$"
        );
    }

    #[test]
    fn errors_name_the_position() {
        for (glob, msg, pos) in [
            ("***potato", "too many stars `***`", 1),
            ("a/***", "too many stars `***`", 3),
            ("ab]c", "unmatched `]`", 3),
            ("ab[c", "unclosed character class `[`", 3),
            ("a{b", "unclosed alternation `{`", 2),
            ("a{b{c}", "unclosed alternation `{`", 2),
            ("ab{}}cd", "unmatched `}`", 5),
            ("ab}c", "unmatched `}`", 3),
            ("a{{.*}", "unclosed regexp `{{`", 2),
            ("ab\\", "dangling escape `\\`", 3),
        ] {
            let e = re(glob).unwrap_err();
            assert_eq!((e.message.as_str(), e.pos), (msg, pos), "{glob}");
        }
        let t = glob_to_regex("x{{a(}}", false).unwrap();
        let e = compile(&t).unwrap_err();
        assert_eq!(e.pos, 2);
        assert!(e.message.starts_with("invalid regular expression"), "{e:?}");
    }

    /// rclone's directory-glob table (fs/filter/glob_test.go), as data.
    #[test]
    fn dir_globs_match_rclone_table() {
        for (glob, want) in [
            ("*", &["/**"][..]),
            ("/*", &["/"]),
            ("*.jpg", &["/**"]),
            ("/*.jpg", &["/"]),
            ("//*.jpg", &["/"]),
            ("/a/*.jpg", &["/a/", "/"]),
            ("/a///*.jpg", &["/a/", "/"]),
            ("/a/b/*.jpg", &["/a/b/", "/a/", "/"]),
            ("a/*.jpg", &["a/"]),
            ("a/b/*.jpg", &["a/b/", "a/"]),
            ("*/*/*.jpg", &["*/*/", "*/"]),
            ("a/b/", &["a/b/", "a/"]),
            ("a/b", &["a/"]),
            ("a/b/*.{jpg,png,gif}", &["a/b/", "a/"]),
            (
                "/a/{jpg,png,gif}/*.{jpg,png,gif}",
                &["/a/{jpg,png,gif}/", "/a/", "/"],
            ),
            ("a/{a,a*b,a**c}/d/", &["/**"]),
            ("/a/{a,a*b,a/c,d}/d/", &["/**"]),
            ("/a/{{.*}}/d/", &["/**"]),
            ("a{b,{c,d}}/e", &["/**"]),
            ("**", &["**/"]),
            ("a**", &["a**/"]),
            ("a**b", &["a**/"]),
            ("a**b**c**d", &["a**b**c**/", "a**b**/", "a**/"]),
            ("a**b/c**d", &["a**b/c**/", "a**b/", "a**/"]),
            (
                "/A/a**b/B/c**d/C/",
                &[
                    "/A/a**b/B/c**d/C/",
                    "/A/a**b/B/c**d/",
                    "/A/a**b/B/c**/",
                    "/A/a**b/B/",
                    "/A/a**b/",
                    "/A/a**/",
                    "/A/",
                    "/",
                ],
            ),
            (
                "/var/spool/**/ncw",
                &["/var/spool/**/", "/var/spool/", "/var/", "/"],
            ),
            ("/sausage3**", &["/sausage3**/", "/"]),
        ] {
            assert_eq!(dir_globs(glob), want, "{glob}");
        }
    }
}
