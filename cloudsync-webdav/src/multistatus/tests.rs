//! Multistatus parsing on answers written the way each server family sends them (RFC 4918's
//! examples, Nextcloud's documentation, Apache mod_dav_fs, IIS), and href validation.

use super::*;

fn resolver(base: &str, request: &str) -> HrefResolver {
    let core = WebdavCore::new(crate::config::WebdavConfig::new(base).validate().unwrap()).unwrap();
    HrefResolver::new(&core, &url::Url::parse(request).unwrap())
}

async fn parse(xml: &str) -> Vec<DavResponse> {
    parse_multistatus(xml.as_bytes()).await.unwrap()
}

/// RFC 4918 §9.1.5 (allprop on a collection), abridged: `D:` prefix, foreign properties with
/// nested `DAV:` elements, absolute-path hrefs.
const RFC4918_ALLPROP: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
  <D:response>
    <D:href>/container/</D:href>
    <D:propstat>
      <D:prop xmlns:R="http://ns.example.com/boxschema/">
        <R:bigbox><R:BoxType>Box type A</R:BoxType></R:bigbox>
        <R:author><R:Name>Hadrian</R:Name></R:author>
        <D:creationdate>1997-12-01T17:42:21-08:00</D:creationdate>
        <D:displayname>Example collection</D:displayname>
        <D:resourcetype><D:collection/></D:resourcetype>
        <D:supportedlock>
          <D:lockentry>
            <D:lockscope><D:exclusive/></D:lockscope>
            <D:locktype><D:write/></D:locktype>
          </D:lockentry>
        </D:supportedlock>
      </D:prop>
      <D:status>HTTP/1.1 200 OK</D:status>
    </D:propstat>
  </D:response>
  <D:response>
    <D:href>/container/front.html</D:href>
    <D:propstat>
      <D:prop xmlns:R="http://ns.example.com/boxschema/">
        <R:bigbox><R:BoxType>Box type B</R:BoxType></R:bigbox>
        <D:creationdate>1997-12-01T18:27:21-08:00</D:creationdate>
        <D:displayname>Example HTML resource</D:displayname>
        <D:getcontentlength>4525</D:getcontentlength>
        <D:getcontenttype>text/html</D:getcontenttype>
        <D:getetag>"zzyzx"</D:getetag>
        <D:getlastmodified>Mon, 12 Jan 1998 09:25:56 GMT</D:getlastmodified>
        <D:resourcetype/>
      </D:prop>
      <D:status>HTTP/1.1 200 OK</D:status>
    </D:propstat>
  </D:response>
</D:multistatus>"#;

#[tokio::test]
async fn rfc4918_allprop() {
    let r = parse(RFC4918_ALLPROP).await;
    assert_eq!(r.len(), 2);
    assert!(r[0].is_dir);
    assert_eq!(r[0].href, "/container/");
    assert!(!r[1].is_dir);
    assert_eq!(r[1].size, Some(4525));
    let res = resolver(
        "http://www.example.com/container/",
        "http://www.example.com/container/",
    );
    assert!(res.resolve(&r[0].href).unwrap().is_root());
    let e = to_entry(res.resolve(&r[1].href).unwrap(), &r[1]);
    assert_eq!(e.path.as_str(), "front.html");
    assert_eq!(e.etag.as_deref(), Some("zzyzx"));
    assert_eq!(
        e.modtime,
        Some(time::macros::datetime!(1998-01-12 09:25:56 UTC))
    );
}

/// RFC 4918 §9.1.3: a 403 propstat beside a 200 one; only the 200 one counts.
#[tokio::test]
async fn rfc4918_failed_propstat_is_ignored() {
    let xml = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
  <D:response xmlns:R="http://ns.example.com/boxschema/">
    <D:href>http://www.example.com/file</D:href>
    <D:propstat>
      <D:prop><R:bigbox/><R:author/><D:getcontentlength>12</D:getcontentlength></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status>
    </D:propstat>
    <D:propstat>
      <D:prop><R:DingALing/><D:getcontentlength>999</D:getcontentlength><D:resourcetype><D:collection/></D:resourcetype></D:prop>
      <D:status>HTTP/1.1 403 Forbidden</D:status>
      <D:responsedescription> The user does not have access to the DingALing property.
      </D:responsedescription>
    </D:propstat>
  </D:response>
  <D:responsedescription> There has been an access violation error.
  </D:responsedescription>
</D:multistatus>"#;
    let r = parse(xml).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].size, Some(12));
    assert!(!r[0].is_dir);
    let res = resolver("http://www.example.com/", "http://www.example.com/");
    assert_eq!(res.resolve(&r[0].href).unwrap().as_str(), "file");
}

/// Nextcloud (Sabre): `d:`, `oc:`, `nc:` prefixes, `&quot;` in etags, 404 propstats for
/// properties a folder lacks, `oc:checksums` on files.
const NEXTCLOUD: &str = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns"><d:response><d:href>/remote.php/dav/files/alice/Photos/</d:href><d:propstat><d:prop><d:getlastmodified>Fri, 27 Nov 2020 10:52:20 GMT</d:getlastmodified><d:resourcetype><d:collection/></d:resourcetype><d:getetag>&quot;5fc0da94a2c0f&quot;</d:getetag><oc:fileid>20</oc:fileid></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat><d:propstat><d:prop><d:getcontentlength/><oc:checksums/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response><d:response><d:href>/remote.php/dav/files/alice/Photos/Birdie%20on%20a%20branch.jpg</d:href><d:propstat><d:prop><d:getlastmodified>Fri, 27 Nov 2020 10:52:21 GMT</d:getlastmodified><d:getcontentlength>593508</d:getcontentlength><d:resourcetype/><d:getetag>&quot;b8bd6ff57d4a1a1bee1e4c2b2e5bbd4a&quot;</d:getetag><oc:fileid>22</oc:fileid><oc:checksums><oc:checksum>SHA1:0f3ac9cf8d73e8b0cb0f9aa1e4d22de8a0a7d10e MD5:b8bd6ff57d4a1a1bee1e4c2b2e5bbd4a ADLER32:3c0e8ab4</oc:checksum></oc:checksums></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response><d:response><d:href>/remote.php/dav/files/alice/Photos/Nextcloud%20community.jpg</d:href><d:propstat><d:prop><d:getlastmodified>Fri, 27 Nov 2020 10:52:21 GMT</d:getlastmodified><d:getcontentlength>797325</d:getcontentlength><d:resourcetype/><d:getetag>&quot;d4b8a6cc7fb24f4ca4e46f4a4d2e3f2a&quot;</d:getetag><oc:fileid>24</oc:fileid></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat><d:propstat><d:prop><oc:checksums/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response></d:multistatus>"#;

#[tokio::test]
async fn nextcloud_listing() {
    let r = parse(NEXTCLOUD).await;
    assert_eq!(r.len(), 3);
    let res = resolver(
        "https://cloud.example.com/remote.php/dav/files/alice/",
        "https://cloud.example.com/remote.php/dav/files/alice/Photos/",
    );
    let dir = to_entry(res.resolve(&r[0].href).unwrap(), &r[0]);
    assert!(dir.is_dir());
    assert_eq!(dir.path.as_str(), "Photos");
    assert_eq!(dir.etag.as_deref(), Some("5fc0da94a2c0f"));
    assert_eq!(dir.id.as_deref(), Some("20"));
    let bird = to_entry(res.resolve(&r[1].href).unwrap(), &r[1]);
    assert_eq!(bird.path.as_str(), "Photos/Birdie on a branch.jpg");
    assert_eq!(bird.size, 593508);
    assert_eq!(
        bird.hashes.get(HashKind::Sha1),
        Some("0f3ac9cf8d73e8b0cb0f9aa1e4d22de8a0a7d10e")
    );
    assert_eq!(
        bird.hashes.get(HashKind::Md5),
        Some("b8bd6ff57d4a1a1bee1e4c2b2e5bbd4a")
    );
    let other = to_entry(res.resolve(&r[2].href).unwrap(), &r[2]);
    assert!(other.hashes.is_empty());
    assert_eq!(other.size, 797325);
}

/// Apache mod_dav_fs binds `DAV:` to generated prefixes (`lp1`, `ns0`) next to `D`.
const APACHE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">
<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/">
<D:href>/dav/docs/</D:href>
<D:propstat>
<D:prop>
<lp1:resourcetype><D:collection/></lp1:resourcetype>
<lp1:getlastmodified>Sat, 14 Nov 2026 10:00:00 GMT</lp1:getlastmodified>
<lp1:getetag>"1000-5c1e0c0e0c0c0"</lp1:getetag>
</D:prop>
<D:status>HTTP/1.1 200 OK</D:status>
</D:propstat>
<D:propstat>
<D:prop>
<ns0:getcontentlength/>
</D:prop>
<D:status>HTTP/1.1 404 Not Found</D:status>
</D:propstat>
</D:response>
<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/">
<D:href>/dav/docs/r%c3%a9sum%c3%a9%20(1).txt</D:href>
<D:propstat>
<D:prop>
<lp1:resourcetype/>
<lp1:getcontentlength>17</lp1:getcontentlength>
<lp1:getlastmodified>Sat, 14 Nov 2026 10:00:01 GMT</lp1:getlastmodified>
<lp1:getetag>"11-5c1e0c0e0c0c1"</lp1:getetag>
</D:prop>
<D:status>HTTP/1.1 200 OK</D:status>
</D:propstat>
</D:response>
</D:multistatus>
"#;

#[tokio::test]
async fn apache_generated_prefixes() {
    let r = parse(APACHE).await;
    let res = resolver(
        "http://127.0.0.1:8080/dav/",
        "http://127.0.0.1:8080/dav/docs/",
    );
    assert!(r[0].is_dir);
    assert_eq!(r[0].size, None);
    let f = to_entry(res.resolve(&r[1].href).unwrap(), &r[1]);
    assert_eq!(f.path.as_str(), "docs/résumé (1).txt");
    assert_eq!(f.size, 17);
    assert!(f.is_file());
}

/// IIS: absolute-URL hrefs, a `b:dt` attribute on dates, an upper-case host.
const IIS: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" xmlns:b="urn:uuid:c2f41010-65b3-11d1-a29f-00aa00c14882/"><D:response><D:href>http://Files.Example.COM/share/</D:href><D:propstat><D:status>HTTP/1.1 200 OK</D:status><D:prop><D:getcontentlength b:dt="int">0</D:getcontentlength><D:getlastmodified b:dt="dateTime.rfc1123">Tue, 03 Mar 2026 08:15:00 GMT</D:getlastmodified><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response><D:response><D:href>http://Files.Example.COM/share/report%202026.xlsx</D:href><D:propstat><D:status>HTTP/1.1 200 OK</D:status><D:prop><D:getcontentlength b:dt="int">20480</D:getcontentlength><D:getlastmodified b:dt="dateTime.rfc1123">Tue, 03 Mar 2026 08:16:40 GMT</D:getlastmodified><D:resourcetype/><D:getetag>"a1b2c3d4:0"</D:getetag></D:prop></D:propstat></D:response></D:multistatus>"#;

#[tokio::test]
async fn iis_absolute_hrefs() {
    let r = parse(IIS).await;
    let res = resolver(
        "http://files.example.com/share/",
        "http://files.example.com/share/",
    );
    assert!(res.resolve(&r[0].href).unwrap().is_root());
    let f = to_entry(res.resolve(&r[1].href).unwrap(), &r[1]);
    assert_eq!(f.path.as_str(), "report 2026.xlsx");
    assert_eq!(f.size, 20480);
    assert_eq!(
        f.modtime,
        Some(time::macros::datetime!(2026-03-03 08:16:40 UTC))
    );
}

/// A default namespace, a `DAV:href` nested in a property value (not the response's href),
/// CDATA and character references.
#[tokio::test]
async fn default_namespace_and_nested_href() {
    let xml = r#"<multistatus xmlns="DAV:"><response>
      <href>/dav/a%20<![CDATA[b]]>&#x20;c&amp;d</href>
      <propstat><prop>
        <current-user-principal><href>/principals/evil/</href></current-user-principal>
        <getcontentlength>3</getcontentlength>
        <x:resourcetype xmlns:x="urn:not-dav"><x:collection/></x:resourcetype>
      </prop><status>HTTP/1.1 200 OK</status></propstat>
    </response></multistatus>"#;
    let r = parse(xml).await;
    assert_eq!(r[0].href, "/dav/a%20b c&d");
    assert!(
        !r[0].is_dir,
        "a collection element in another namespace is not DAV:collection"
    );
    let res = resolver("http://h/dav/", "http://h/dav/");
    assert_eq!(res.resolve(&r[0].href).unwrap().as_str(), "a b c&d");
}

#[tokio::test]
async fn not_multistatus_is_an_error() {
    for bad in [
        "<html><body>login</body></html>",
        "<D:multistatus xmlns:D=\"urn:other\"/>",
        "",
        "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/x",
    ] {
        let e = parse_multistatus(bad.as_bytes()).await.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Transient),
            "{bad:?}: {e:?}"
        );
    }
}

#[test]
fn hostile_hrefs_are_refused() {
    let res = resolver("http://h:8080/dav/root/", "http://h:8080/dav/root/dir/");
    for href in [
        "/dav/root/../secret",
        "/dav/root/dir/%2e%2e/%2e%2e/etc/passwd",
        "/dav/root/./x",
        "/dav/other/x",
        "/dav/rootx/y",
        "/etc/passwd",
        "http://evil.example/dav/root/x",
        "https://h:8080/dav/root/x",
        "http://h:9090/dav/root/x",
        "/dav/root/a%2Fb",
        "/dav/root/nul%00byte",
        "../x",
        "/dav/root/%ff",
    ] {
        assert!(res.resolve(href).is_err(), "{href} was accepted");
    }
    // Relative hrefs resolve against the request URL; encodings are decoded once.
    assert_eq!(res.resolve("f%2520.txt").unwrap().as_str(), "dir/f%20.txt");
    assert_eq!(res.resolve("/dav/root/dir/").unwrap().as_str(), "dir");
    assert_eq!(
        res.resolve("http://H:8080/dav/root/a?x=1")
            .unwrap()
            .as_str(),
        "a"
    );
    assert!(res.resolve("/dav/root").unwrap().is_root());
}

#[test]
fn checksums_and_dates() {
    let h = parse_checksums(&["sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA md5:zz".into()]);
    assert_eq!(
        h.get(HashKind::Sha1),
        Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    );
    assert_eq!(h.get(HashKind::Md5), None, "not hex: ignored");
    assert!(parse_modtime("yesterday").is_none());
    assert!(parse_modtime("Sunday, 06-Nov-94 08:49:37 GMT").is_some());
}

/// Sizes at and past u64::MAX, and dates at the edges of what HTTP dates can say: no panic,
/// no wrap-around; a size that is not a u64 makes the entry undescribable.
#[tokio::test]
async fn extreme_sizes_and_dates() {
    let one = |size: &str, date: &str| {
        format!(
            r#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/f</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>{size}</d:getcontentlength><d:getlastmodified>{date}</d:getlastmodified></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"#
        )
    };
    let r = &parse(&one(
        "18446744073709551615",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ))
    .await[0];
    assert!(response_problem(r).is_none());
    let res = resolver("http://h/", "http://h/");
    let e = to_entry(res.resolve(&r.href).unwrap(), r);
    assert_eq!(e.size, u64::MAX);
    assert_eq!(e.modtime.map(|t| t.year()), Some(9999));
    for bad in ["18446744073709551616", "-1", "1e3", "12 bytes"] {
        let r = &parse(&one(bad, "x")).await[0];
        let e = response_problem(r).unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(e.kind(), ErrorKind::Protocol, "{bad}");
    }
    for date in [
        "Sat, 01 Jan 99999 00:00:00 GMT",
        "Mon, 01 Jan 1900 00:00:00 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Sun, 99 Foo 2020 99:99:99 GMT",
        "",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Fri, 31 Dec 9999 23:59:60 GMT",
    ] {
        // Parsed or not, never a panic.
        let _ = parse_modtime(date);
    }
}

#[tokio::test]
async fn response_level_status_and_limits() {
    let xml = r#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/a</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response></d:multistatus>"#;
    assert_eq!(parse(xml).await[0].status, Some(404));
    let deep = format!(
        "<d:multistatus xmlns:d=\"DAV:\">{}",
        "<x>".repeat(MAX_DEPTH + 5)
    );
    let e = parse_multistatus(deep.as_bytes()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    let long = format!(
        "<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>{}</d:href></d:response></d:multistatus>",
        "a".repeat(MAX_TEXT + 1)
    );
    let e = parse_multistatus(long.as_bytes()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
}
