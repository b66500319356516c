//! Feeds arbitrary bytes to the `LIST`, `MLSD` and `MLST` line parsers and the timestamp
//! parser: none may panic, and a failure must name the line it failed on.
#![no_main]

use cloudsync_ftp::parse::{parse_list_line, parse_mlsd_line, parse_mlst_line, parse_timeval};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    if let Err(e) = parse_list_line(&line, now) {
        assert_eq!(e.line, line.trim_end_matches(['\r', '\n']));
    }
    if let Ok(Some(e)) = parse_mlsd_line(&line) {
        assert!(!e.name.is_empty());
    }
    let _ = parse_mlst_line(&line);
    let _ = parse_timeval(&line);
});
