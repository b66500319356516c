//! Names Dropbox will not store, refused before any request so that one such file is one
//! error of its own and costs no round trip.

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};

/// File names the Dropbox desktop client ignores and the service refuses (`disallowed_name`),
/// compared without case: the "Ignored files" help article (dropbox.com/help/145: `desktop.ini`,
/// `thumbs.db`, `.ds_store`, `icon\r`, `.dropbox`, `.dropbox.attr`) and the client's cache
/// folder `.dropbox.cache`.
const IGNORED: &[&str] = &[
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
    ".dropbox.cache",
];

/// Checks every segment of `path` against what Dropbox refuses: a backslash (the help
/// center's "always disallowed" characters are `/` and `\`), DEL, a trailing space, and the
/// ignored names. The error is [`ErrorKind::InvalidInput`] naming the rule.
pub(crate) fn check(path: &RemotePath) -> Result<()> {
    if path.is_root() {
        return Ok(());
    }
    for seg in path.as_str().split('/') {
        let why = if seg.contains('\\') {
            Some("Dropbox does not allow a backslash (\\) in a name")
        } else if seg.contains('\u{7f}') {
            Some("Dropbox does not store names with the DEL character")
        } else if seg.ends_with(' ') {
            Some("Dropbox does not store names that end with a space")
        } else if IGNORED.contains(&seg.to_lowercase().as_str()) {
            Some(
                "Dropbox refuses this name (desktop.ini, thumbs.db, .ds_store, Icon\\r and \
                 .dropbox* are files its clients ignore)",
            )
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::new(ErrorKind::InvalidInput, why).with_path(path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_names() {
        for bad in [
            "a/desktop.ini",
            "Thumbs.DB",
            "x/.DS_Store",
            "Icon\r",
            ".dropbox",
            "d/.Dropbox.Attr",
            ".dropbox.cache/x",
            "back\\slash",
            "trailing /x",
            "del\u{7f}",
        ] {
            let e = check(&RemotePath::new(bad).unwrap()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        for good in ["desktop.ini.bak", "Icon", "a b/c", ".dropboxx", "x.dropbox"] {
            check(&RemotePath::new(good).unwrap()).unwrap();
        }
    }
}
