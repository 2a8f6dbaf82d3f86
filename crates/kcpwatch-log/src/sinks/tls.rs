//! The rustls client configuration of a TLS sink (RFC 5425): TLS 1.2 or 1.3, the server
//! certificate verified against the configured CA file and server name, an optional client
//! certificate.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::error::SinkError;

/// Everything a connection needs to start a TLS session; built once, when the sink starts, so
/// that a wrong file is an error of `start` rather than a reconnect loop.
pub(crate) struct TlsSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

fn pem_error(what: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> SinkError {
    let source = match e {
        rustls::pki_types::pem::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    };
    SinkError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SinkError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(SinkError::EmptyPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A client certificate chain and its private key, read from PEM files, checked to belong
/// together (rustls refuses a key that does not match the certificate): for receivers and
/// collectors that authenticate their senders (mutual TLS).
pub(crate) fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SinkError> {
    let chain = certificates("client certificate", cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => SinkError::EmptyPem {
            what: "client key",
            path: key.to_path_buf(),
        },
        e => pem_error("client key", key, e),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key_der.clone_key())?;
    match rustls::sign::CertifiedKey::new(chain.clone(), signing).keys_match() {
        // A key type whose public half the provider cannot derive is checked by the peer.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok((chain, key_der))
}

pub(crate) fn setup(
    server_name: &str,
    ca_file: &Path,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<TlsSetup, SinkError> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| SinkError::InvalidServerName(server_name.to_owned()))?;
    let mut roots = RootCertStore::empty();
    for cert in certificates("CA file", ca_file)? {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        // RFC 5425 §4.2 asks for TLS 1.2 at least (RFC 9662 updates it to 1.2 or later).
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => {
            let (chain, key) = client_identity(cert, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsSetup {
        config: Arc::new(config),
        server_name: name,
    })
}
