//! MIME types by file extension, found the way rclone finds them (Go's `mime.TypeByExtension`
//! on Linux): Go's built-in table first; then the first freedesktop `globs2` database that can
//! be read (weight order, the first entry for an extension wins, built-ins are kept), or, when
//! there is none, the `mime.types` files (later entries replace earlier ones); `text/` types
//! get `; charset=utf-8`. An extension is tried as written, then in lower case.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Go's `builtinTypesLower`.
const BUILTIN: [(&str, &str); 16] = [
    (".avif", "image/avif"),
    (".css", "text/css; charset=utf-8"),
    (".gif", "image/gif"),
    (".htm", "text/html; charset=utf-8"),
    (".html", "text/html; charset=utf-8"),
    (".jpeg", "image/jpeg"),
    (".jpg", "image/jpeg"),
    (".js", "text/javascript; charset=utf-8"),
    (".json", "application/json"),
    (".mjs", "text/javascript; charset=utf-8"),
    (".pdf", "application/pdf"),
    (".png", "image/png"),
    (".svg", "image/svg+xml"),
    (".wasm", "application/wasm"),
    (".webp", "image/webp"),
    (".xml", "text/xml; charset=utf-8"),
];

const GLOBS: [&str; 2] = ["/usr/local/share/mime/globs2", "/usr/share/mime/globs2"];
const TYPE_FILES: [&str; 4] = [
    "/etc/mime.types",
    "/etc/apache2/mime.types",
    "/etc/apache/mime.types",
    "/etc/httpd/conf/mime.types",
];

static TABLE: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(|p| std::fs::read_to_string(p).ok()));

/// The MIME type of a file called `name` (`application/octet-stream` when unknown).
pub fn mime_type(name: &str) -> String {
    lookup(&TABLE, name)
}

fn lookup(table: &HashMap<String, String>, name: &str) -> String {
    let ext = match name.rfind('.') {
        Some(i) => &name[i..],
        None => return "application/octet-stream".to_owned(),
    };
    table
        .get(ext)
        .or_else(|| table.get(&ext.to_lowercase()))
        .cloned()
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

fn with_charset(t: &str) -> String {
    if t.starts_with("text/") && !t.contains("charset=") {
        format!("{t}; charset=utf-8")
    } else {
        t.to_owned()
    }
}

/// The table, reading files through `read` (a test passes its own).
fn load(read: impl Fn(&str) -> Option<String>) -> HashMap<String, String> {
    let mut table: HashMap<String, String> = BUILTIN
        .iter()
        .map(|(e, t)| ((*e).to_owned(), (*t).to_owned()))
        .collect();
    for file in GLOBS {
        let Some(text) = read(file) else { continue };
        for line in text.lines() {
            // weight:mimetype:glob[:more]
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 || fields[0].is_empty() || fields[2].len() < 3 {
                continue;
            }
            if fields[0].starts_with('#') || !fields[2].starts_with("*.") {
                continue;
            }
            let ext = &fields[2][1..];
            if ext.contains(['?', '*', '[']) || table.contains_key(ext) {
                continue;
            }
            table.insert(ext.to_owned(), with_charset(fields[1]));
        }
        return table;
    }
    for file in TYPE_FILES {
        let Some(text) = read(file) else { continue };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(t) = words.next().filter(|t| !t.starts_with('#')) else {
                continue;
            };
            for ext in words {
                table.insert(format!(".{ext}"), with_charset(t));
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs2_first_entry_wins_and_builtins_stay() {
        let globs = "# comment\n50:text/x-log:*.log\n50:text/plain:*.log\n50:text/x-c++src:*.C\n\
                     50:text/x-csrc:*.c\n50:image/x-jpeg:*.jpg\n10:text/x-readme:README*\n";
        let t = load(|p| (p == "/usr/share/mime/globs2").then(|| globs.to_owned()));
        assert_eq!(lookup(&t, "a.log"), "text/x-log; charset=utf-8");
        assert_eq!(lookup(&t, "a.C"), "text/x-c++src; charset=utf-8");
        assert_eq!(lookup(&t, "a.c"), "text/x-csrc; charset=utf-8");
        assert_eq!(
            lookup(&t, "A.JPG"),
            "image/jpeg",
            "built-in kept, case folded"
        );
        assert_eq!(lookup(&t, "README"), "application/octet-stream");
    }

    #[test]
    fn mime_types_files_when_there_is_no_glob_database() {
        let types = "text/markdown md markdown\n# x/y z\napplication/x-trash bak\n";
        let t = load(|p| (p == "/etc/mime.types").then(|| types.to_owned()));
        assert_eq!(lookup(&t, "n.md"), "text/markdown; charset=utf-8");
        assert_eq!(lookup(&t, "n.bak"), "application/x-trash");
        assert_eq!(lookup(&t, "n.z"), "application/octet-stream");
    }
}
