//! Authorizes cloudsync for a Dropbox app and prints the config section to paste.
//!
//! Runs the OAuth2 authorization-code flow with PKCE (no app secret needed) and a loopback
//! redirect: register `http://127.0.0.1:53682/` as a redirect URI of your app in the Dropbox
//! App Console, then run
//!
//! ```text
//! cargo run --example authorize --features dropbox -- APP_KEY [TOKEN_FILE] [PORT]
//! ```
//!
//! open the printed URL, approve the app, and the tokens are written to TOKEN_FILE
//! (default `dropbox-token.json`, readable only by you).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use cloudsync_dropbox::{
    DEFAULT_TOKEN_URL, authorize_url, exchange_code, pkce_pair, random_token, write_token_file,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(app_key) = args.next() else {
        eprintln!("usage: authorize APP_KEY [TOKEN_FILE] [PORT]");
        std::process::exit(2);
    };
    let token_file = PathBuf::from(args.next().unwrap_or_else(|| "dropbox-token.json".into()));
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(53682);

    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let (verifier, challenge) = pkce_pair()?;
    let state = random_token(16)?;
    println!(
        "Open this URL in a browser and approve the app:\n\n  {}\n",
        authorize_url(&app_key, &redirect_uri, &challenge, &state)
    );

    // The browser comes back with ?code=…&state=… (or ?error=…).
    let (mut stream, _) = listener.accept()?;
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = url::Url::parse(&format!("http://127.0.0.1{target}"))?;
    let param = |k: &str| {
        query
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let reply = |stream: &mut std::net::TcpStream, text: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{text}\n"
        );
    };
    if param("state").as_deref() != Some(state.as_str()) {
        reply(&mut stream, "Authorization failed: state mismatch.");
        return Err("the redirect's state does not match: not our authorization".into());
    }
    let Some(code) = param("code") else {
        let why = param("error_description")
            .or(param("error"))
            .unwrap_or_default();
        reply(&mut stream, "Authorization failed.");
        return Err(format!("authorization refused: {why}").into());
    };
    reply(
        &mut stream,
        "cloudsync is authorized. You can close this window.",
    );

    let token = exchange_code(DEFAULT_TOKEN_URL, &app_key, &code, &verifier, &redirect_uri).await?;
    write_token_file(&token_file, &token)?;
    let path = std::fs::canonicalize(&token_file)?;
    println!(
        "Tokens written to {}. Add this to your cloudsync config:\n",
        path.display()
    );
    println!(
        "[remotes.dropbox]\ntype = \"dropbox\"\napp_key = {app_key:?}\ntoken_file = {:?}",
        path.display().to_string()
    );
    Ok(())
}
