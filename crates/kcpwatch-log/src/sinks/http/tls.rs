//! The TLS configuration of an `https` sink: trust in the configured CA file only, and the
//! client certificate of mutual TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::super::error::SinkError;
use super::super::tls::client_identity;

/// Trust for `https`: the CA file only; and the client certificate, if any. Read once, at
/// start, so that a wrong file (or a key that does not match its certificate) is an error of
/// `start` rather than a retry loop.
pub(super) fn tls_config(
    ca_file: &Path,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<ureq::tls::TlsConfig, SinkError> {
    let io = |source| SinkError::Io {
        what: "CA file",
        path: ca_file.to_path_buf(),
        source,
    };
    let pem = |e: rustls::pki_types::pem::Error| match e {
        rustls::pki_types::pem::Error::Io(e) => io(e),
        other => io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            other.to_string(),
        )),
    };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(SinkError::EmptyPem {
            what: "CA file",
            path: ca_file.to_path_buf(),
        });
    }
    let roots: Vec<ureq::tls::Certificate<'static>> = certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let client = match client_cert {
        Some((cert, key)) => {
            // Read and checked the way syslog over TLS does it; ureq takes the key as PEM
            // (its key kind type is not public).
            let (chain, _) = client_identity(cert, key)?;
            let pem = std::fs::read(key).map_err(|source| SinkError::Io {
                what: "client key",
                path: key.clone(),
                source,
            })?;
            let key = ureq::tls::PrivateKey::from_pem(&pem)
                .map_err(|_| SinkError::EmptyPem {
                    what: "client key",
                    path: key.clone(),
                })?
                .to_owned();
            let chain: Vec<ureq::tls::Certificate<'static>> = chain
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            Some(ureq::tls::ClientCert::new_with_certs(&chain, key))
        }
        None => None,
    };
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .client_cert(client)
        // ring, as for syslog over TLS: no cmake/NASM in the build.
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build())
}
