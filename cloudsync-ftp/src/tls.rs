//! TLS for FTPS: the rustls configurations (system roots plus `ca_file`, with certificates
//! listed in `ca_file` pinned; or no checks at all on explicit request) and the stream type the
//! FTP client runs over.
//!
//! [`FtpTlsStream`] flushes after every write. The FTP client writes a command and then waits
//! for the reply without flushing; a TLS stream may keep the encrypted command in its buffer
//! when the socket is momentarily not writable (tokio's cooperative budget makes that happen
//! under load), and the command would never be sent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use cloudsync_core::{Error, ErrorKind, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use suppaftp::FtpError;
use suppaftp::tokio::{AsyncTlsConnector, TokioTlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::Settings;

/// Opens TLS sessions for one control connection and its data connections.
#[derive(Clone)]
pub(crate) struct FtpTlsConnector {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for FtpTlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpTlsConnector").finish_non_exhaustive()
    }
}

impl FtpTlsConnector {
    pub(crate) fn new(config: Arc<rustls::ClientConfig>) -> Self {
        FtpTlsConnector {
            connector: tokio_rustls::TlsConnector::from(config),
        }
    }
}

#[async_trait::async_trait]
impl AsyncTlsConnector for FtpTlsConnector {
    type Stream = FtpTlsStream;

    async fn connect(&self, domain: &str, stream: TcpStream) -> suppaftp::FtpResult<FtpTlsStream> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| FtpError::SecureError(e.to_string()))?;
        let inner = self
            .connector
            .connect(name, stream)
            .await
            .map_err(|e| FtpError::SecureError(e.to_string()))?;
        Ok(FtpTlsStream {
            inner,
            unflushed: None,
        })
    }
}

/// A TLS stream whose writes complete only once the encrypted bytes reached the socket.
#[derive(Debug)]
pub(crate) struct FtpTlsStream {
    inner: tokio_rustls::client::TlsStream<TcpStream>,
    /// Bytes of the current write already handed to rustls, waiting for the flush.
    unflushed: Option<usize>,
}

impl AsyncRead for FtpTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FtpTlsStream {
    /// Hands `buf` to rustls, then flushes. While the flush is pending the same write is
    /// retried by the caller (as `write_all` does) and only the flush is resumed.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = match self.unflushed {
            Some(n) => n,
            None => {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
                self.unflushed = Some(n);
                n
            }
        };
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.unflushed = None;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl TokioTlsStream for FtpTlsStream {
    type InnerStream = tokio_rustls::client::TlsStream<TcpStream>;

    fn tcp_stream(self) -> suppaftp::FtpResult<TcpStream> {
        Ok(self.inner.into_inner().0)
    }

    fn get_ref(&self) -> &TcpStream {
        self.inner.get_ref().0
    }

    fn mut_ref(&mut self) -> &mut Self::InnerStream {
        &mut self.inner
    }
}

/// The two rustls client configurations: TLS 1.2 only (tried first) and TLS 1.2 or 1.3.
#[derive(Debug)]
pub(crate) struct TlsConfigs {
    pub(crate) tls12: Arc<rustls::ClientConfig>,
    pub(crate) any: Arc<rustls::ClientConfig>,
}

/// Builds the rustls clients: aws-lc-rs provider, the system's roots plus `ca_file`, or no
/// verification at all when `no_check_certificate` is set.
pub(crate) fn tls_configs(s: &Settings) -> Result<TlsConfigs> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if s.no_check_certificate {
        tracing::warn!(host = %s.host, "FTPS certificate checks are disabled (no_check_certificate)");
        Arc::new(AcceptAnyCert(provider.clone()))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("system certificate store: {e}");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        let mut pinned = Vec::new();
        if let Some(path) = &s.ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!(
                            "ftp config: key `ca_file`: cannot read {}: {e}",
                            path.display()
                        ),
                    )
                })?;
            if certs.is_empty() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "ftp config: key `ca_file`: no certificate in {}",
                        path.display()
                    ),
                ));
            }
            for c in certs {
                // A server's own self-signed certificate may not parse as a trust anchor;
                // it is still pinned below.
                if let Err(e) = roots.add(c.clone()) {
                    tracing::debug!("ca_file certificate is not a usable CA ({e}); pinned only");
                }
                pinned.push(c);
            }
        } else if added == 0 {
            tracing::warn!("no system root certificates found; FTPS servers cannot be verified");
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("ftp config: no usable trusted certificates ({e}); set `ca_file`"),
            )
        })?;
        Arc::new(PinningVerifier { webpki, pinned })
    };
    let build = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map(|b| {
                Arc::new(
                    b.dangerous()
                        .with_custom_certificate_verifier(verifier.clone())
                        .with_no_client_auth(),
                )
            })
            .map_err(|e| Error::new(ErrorKind::ConfigInvalid, format!("TLS setup: {e}")))
    };
    Ok(TlsConfigs {
        tls12: build(&[&rustls::version::TLS12])?,
        any: build(&[&rustls::version::TLS13, &rustls::version::TLS12])?,
    })
}

/// The usual web PKI checks, plus: a server certificate that is itself listed in `ca_file` is
/// accepted as is. Self-signed server certificates (often made with `CA:TRUE`, which the web
/// PKI refuses as a server certificate) can so be trusted by listing them.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Certificate "verifier" for `no_check_certificate`: accepts any certificate but still checks
/// the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
