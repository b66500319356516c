//! Filter benchmark: paths per second for 1,000,000 generated paths against 20 mixed rules (a
//! typical backup `--filter-from` list: directory excludes, extension excludes, anchored
//! includes, one `{{regexp}}`, a catch-all exclude).
//!
//! Run with `cargo bench -p cloudsync --bench filter`; criterion reports the throughput in
//! elements (paths) per second on one core. Before criterion runs, the bench also prints the
//! throughput per second of *on-CPU* time (from `/proc/thread-self/schedstat`, so a busy
//! machine does not skew it), alternating with a reference that evaluates the same compiled
//! rules the way rclone does: every rule's regular expression in order, then the directory
//! rules of every parent of an included file.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cloudsync::{FilterSet, RemotePath, RuleKind};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regex::{Regex, RegexBuilder};

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
        "2023",
        "2024",
        "build",
        "node_modules",
        ".git",
        "lib",
        "assets",
        "old",
        "misc",
        "a b",
        "nested",
        "project-7",
    ];
    const STEMS: &[&str] = &[
        "IMG_0001",
        "report",
        "main",
        "notes",
        "index",
        "~lock",
        "data",
        "scan 2024-01-02",
        "README",
        "Thumbs",
        "video",
        "x",
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

/// Nanoseconds this thread has spent on a CPU, when the kernel says.
fn on_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// Runs `f` once; returns (on-CPU time or wall time, whether it is on-CPU time).
fn timed(mut f: impl FnMut() -> usize) -> (Duration, bool) {
    let (c0, w0) = (on_cpu(), Instant::now());
    black_box(f());
    let wall = w0.elapsed();
    match (c0, on_cpu()) {
        (Some(a), Some(b)) if b > a => (b - a, true),
        _ => (wall, false),
    }
}

/// The compiled rules evaluated as rclone does: each regex in order.
struct Reference {
    file: Vec<(bool, Regex)>,
    dir: Vec<(bool, Regex)>,
}

impl Reference {
    fn from_dump(dump: &str) -> Reference {
        let mut file = Vec::new();
        let mut dir = Vec::new();
        let mut in_dirs = false;
        for line in dump.lines() {
            if line.starts_with("--- Directory") {
                in_dirs = true;
            }
            let (include, re) = match (line.strip_prefix("+ "), line.strip_prefix("- ")) {
                (Some(re), _) => (true, re),
                (_, Some(re)) => (false, re),
                _ => continue,
            };
            let re = RegexBuilder::new(re)
                .dot_matches_new_line(true)
                .build()
                .expect("dumped regex compiles");
            if in_dirs { &mut dir } else { &mut file }.push((include, re));
        }
        Reference { file, dir }
    }

    fn first(rules: &[(bool, Regex)], s: &str) -> bool {
        rules
            .iter()
            .find(|(_, re)| re.is_match(s))
            .is_none_or(|(inc, _)| *inc)
    }

    fn include_file(&self, p: &RemotePath) -> bool {
        let s = p.as_str();
        Self::first(&self.file, s)
            && s.match_indices('/')
                .all(|(i, _)| Self::first(&self.dir, &s[..=i]))
    }
}

fn bench(c: &mut Criterion) {
    // FILTER_BENCH_RULES=file swaps in another rule list (for experiments).
    let rules = std::env::var("FILTER_BENCH_RULES")
        .ok()
        .filter(|f| !f.is_empty())
        .map(|f| std::fs::read_to_string(f).expect("read FILTER_BENCH_RULES"))
        .unwrap_or_else(|| RULES.to_owned());
    let filter = FilterSet::builder()
        .add_rules_from_str(RuleKind::Filter, &rules)
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
        rules.lines().count()
    );
    let reference = Reference::from_dump(&filter.dump());
    let ref_included = paths.iter().filter(|p| reference.include_file(p)).count();
    assert_eq!(ref_included, included, "reference and FilterSet disagree");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut cpu = true;
    for _ in 0..5 {
        let (t, c) = timed(|| {
            paths
                .iter()
                .filter(|p| filter.include_file(p, 1, None))
                .count()
        });
        ours.push(t);
        cpu &= c;
        let (t, c) = timed(|| paths.iter().filter(|p| reference.include_file(p)).count());
        theirs.push(t);
        cpu &= c;
    }
    ours.sort();
    theirs.sort();
    let rate = |d: Duration| paths.len() as f64 / d.as_secs_f64() / 1e6;
    eprintln!(
        "filter bench ({} time, median of 5, alternating): FilterSet {:.2} M paths/s, \
         regex-per-rule reference {:.2} M paths/s ({:.1}x)",
        if cpu { "on-CPU" } else { "wall" },
        rate(ours[2]),
        rate(theirs[2]),
        theirs[2].as_secs_f64() / ours[2].as_secs_f64()
    );

    // FILTER_BENCH_QUICK=1: only the on-CPU comparison above.
    if std::env::var_os("FILTER_BENCH_QUICK").is_some() {
        return;
    }
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
