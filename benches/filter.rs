//! Filter benchmark: paths per second for 1,000,000 generated paths against 20 mixed rules (a
//! typical backup `--filter-from` list: directory excludes, extension excludes, anchored
//! includes, one `{{regexp}}`, a catch-all exclude).
//!
//! Run with `cargo bench -p cloudsync --bench filter`; criterion reports the throughput in
//! elements (paths) per second on one core.

use std::hint::black_box;
use std::time::Duration;

use cloudsync::{FilterSet, RemotePath, RuleKind};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PATHS: usize = 1_000_000;

const RULES: &str = "\
- .git/
- node_modules/
- *.tmp
- *.bak
- ~*
- .DS_Store
- Thumbs.db
- /cache/**
- **/build/**
- *.{log,out}
+ /photos/**.{jpg,jpeg,png,heic}
- /photos/**
+ /docs/**
+ /src/**.rs
+ *.pdf
+ /projects/*/README.md
+ {{.*[0-9]{4}-[0-9]{2}-[0-9]{2}.*}}
- *.mp4
+ *.json
- *
";

/// Deterministic paths of depth 1 to 6 over a small vocabulary of directory and file names.
fn paths() -> Vec<RemotePath> {
    const TOP: &[&str] = &[
        "photos", "docs", "src", "projects", "cache", "music", "backup", "home", "var", "tmp",
    ];
    const DIRS: &[&str] = &[
        "2023", "2024", "build", "node_modules", ".git", "lib", "assets", "old", "misc", "a b",
        "nested", "project-7",
    ];
    const STEMS: &[&str] = &[
        "IMG_0001", "report", "main", "notes", "index", "~lock", "data", "scan 2024-01-02",
        "README", "Thumbs", "video", "x",
    ];
    const EXTS: &[&str] = &[
        ".jpg", ".png", ".rs", ".txt", ".log", ".tmp", ".bak", ".pdf", ".mp4", ".json", ".md",
        ".heic", "",
    ];
    let mut rng = fastrand_like(0x5eed);
    (0..PATHS)
        .map(|_| {
            let depth = 1 + (rng() % 6) as usize;
            let mut s = String::with_capacity(64);
            s.push_str(TOP[(rng() % TOP.len() as u64) as usize]);
            for _ in 1..depth {
                s.push('/');
                s.push_str(DIRS[(rng() % DIRS.len() as u64) as usize]);
            }
            s.push('/');
            s.push_str(STEMS[(rng() % STEMS.len() as u64) as usize]);
            s.push_str(EXTS[(rng() % EXTS.len() as u64) as usize]);
            RemotePath::new(&s).expect("generated paths are valid")
        })
        .collect()
}

/// A small xorshift generator (the facade has no RNG dependency).
fn fastrand_like(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn bench(c: &mut Criterion) {
    let filter = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, RULES)
        .build()
        .expect("rules compile");
    let paths = paths();
    let included = paths
        .iter()
        .filter(|p| filter.include_file(p, 1, None))
        .count();
    eprintln!(
        "filter bench: {} paths, {} rules, {included} included",
        paths.len(),
        RULES.lines().count()
    );

    let mut group = c.benchmark_group("filter");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.bench_function("include_file_1M_paths_20_rules", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for p in &paths {
                n += usize::from(filter.include_file(black_box(p), 1, None));
            }
            black_box(n)
        })
    });
    group.bench_function("include_dir_1M_parents_20_rules", |b| {
        let dirs: Vec<RemotePath> = paths.iter().filter_map(RemotePath::parent).collect();
        b.iter(|| {
            let mut n = 0usize;
            for d in &dirs {
                n += usize::from(filter.include_dir(black_box(d)));
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
