//! Fuzzes the filter rule and glob parsers and the matcher: no input may panic.
//!
//! The input is split at the first newline: the first part is used as a glob, a rule, a rules
//! file, a duration, an age and a size; the rest (or a default) as the path to match.
#![no_main]

use cloudsync_core::{
    FilterBuilder, FilterSet, RemotePath, RuleKind, parse_age, parse_duration, parse_size,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, path) = text.split_once('\n').unwrap_or((text, "a/b.txt"));
    let _ = parse_duration(pattern);
    let _ = parse_age(pattern);
    let _ = parse_size(pattern);

    let builders: [fn(&mut FilterBuilder, &str); 6] = [
        |b, p| {
            b.include(p);
        },
        |b, p| {
            b.exclude(p);
        },
        |b, p| {
            b.filter(p);
        },
        |b, p| {
            b.add_rules_from_str(RuleKind::Filter, p);
        },
        |b, p| {
            b.add_rules_from_str(RuleKind::Include, p).ignore_case(true);
        },
        |b, p| {
            b.files_from_list(p.split(',').map(str::to_owned).collect());
        },
    ];
    let path = RemotePath::new(path).ok();
    for add in builders {
        let mut b = FilterSet::builder();
        add(&mut b, pattern);
        if let (Ok(f), Some(p)) = (b.build(), &path) {
            let _ = f.include_path(p, false);
            let _ = f.include_dir(p);
            let _ = f.include_file(p, 0, None);
            let _ = f.dump();
        }
    }
});
