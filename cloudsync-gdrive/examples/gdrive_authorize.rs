//! Gets a Google Drive refresh token with the OAuth 2.0 installed-app flow (loopback redirect
//! and PKCE) and writes it to a token file for the `gdrive` backend's `token_file` key.
//!
//! ```text
//! GDRIVE_CLIENT_SECRET=... cargo run -p cloudsync-gdrive --example gdrive_authorize -- \
//!     CLIENT_ID ~/.config/cloudsync/gdrive-token.json [CLIENT_SECRET_ENV]
//! ```
//!
//! Open the printed URL in a browser, grant access, and the browser's redirect to
//! `http://127.0.0.1:PORT/` hands the code to this program, which exchanges it for tokens.

use std::io::Write as _;

use cloudsync_core::http::{pkce_pair, random_token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const SCOPE: &str = "https://www.googleapis.com/auth/drive";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(client_id), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: authorize CLIENT_ID TOKEN_FILE [CLIENT_SECRET_ENV]");
        std::process::exit(2);
    };
    let client_secret = match args.get(2) {
        Some(var) => Some(std::env::var(var).map_err(|_| format!("{var} is not set"))?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirect = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
    let (verifier, challenge) = pkce_pair()?;
    let state = random_token(24)?;
    let mut url = url::Url::parse(AUTH_URL)?;
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPE)
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state);
    println!("Open this URL in a browser and grant access:\n\n{url}\n");

    // One redirect request: GET /?state=...&code=... HTTP/1.1
    let (mut conn, _) = listener.accept().await?;
    let mut buf = vec![0u8; 8192];
    let n = conn.read(&mut buf).await?;
    let request = String::from_utf8_lossy(&buf[..n]);
    let target = request
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or("malformed redirect request")?;
    let got = url::Url::parse(&format!("http://127.0.0.1{target}"))?;
    let param = |k: &str| {
        got.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    let reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
                 cloudsync: you can close this window.\r\n";
    conn.write_all(reply.as_bytes()).await?;
    if param("state").as_deref() != Some(state.as_str()) {
        return Err("the redirect's state does not match (possible forgery)".into());
    }
    if let Some(e) = param("error") {
        return Err(format!("authorization refused: {e}").into());
    }
    let code = param("code").ok_or("no code in the redirect")?;

    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", client_id.clone()),
        ("code_verifier", verifier),
    ];
    if let Some(s) = client_secret {
        form.push(("client_secret", s));
    }
    let res = reqwest::Client::new()
        .post(cloudsync_gdrive::DEFAULT_TOKEN_URL)
        .form(&form)
        .send()
        .await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    let Some(refresh) = body.get("refresh_token").and_then(|v| v.as_str()) else {
        return Err(format!("token endpoint answered {status} without a refresh token").into());
    };
    let mut file = {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(out)?
    };
    writeln!(file, "{}", serde_json::json!({ "refresh_token": refresh }))?;
    println!("Wrote {out}. Use it as `token_file` with client_id {client_id}.");
    Ok(())
}
