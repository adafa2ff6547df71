//! TLS on the client link (SPEC §4): STARTTLS with the server's certificate verified against
//! the system's roots or a CA file the user gives; plain TCP only when asked for explicitly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How the client link is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmppTls {
    /// Plain TCP: loopback tests and the local testnet only (the node warns).
    Plaintext,
    /// STARTTLS, refusing a server whose certificate does not verify for the XMPP domain.
    Verify {
        /// Trust only the CA certificates in this PEM file; `None`: the system's roots.
        ca_file: Option<PathBuf>,
    },
}

/// Why no TLS client configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The system has no usable root certificates.
    #[error("no system root certificates could be loaded: {0}")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The rustls client configuration for `tls`; `None` for plain TCP.
pub fn client_config(tls: &XmppTls) -> Result<Option<Arc<ClientConfig>>, TlsSetupError> {
    let XmppTls::Verify { ca_file } = tls else {
        return Ok(None);
    };
    let roots = match ca_file {
        Some(path) => ca_file_roots(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// The CA certificates of a PEM file.
fn ca_file_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let err = |reason: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate in it".into()));
    }
    Ok(roots)
}

/// The operating system's trusted roots.
fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or("none found".to_string(), |e| e.to_string());
        return Err(TlsSetupError::NoRoots(why));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_needs_no_configuration() {
        assert!(client_config(&XmppTls::Plaintext).unwrap().is_none());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = client_config(&XmppTls::Verify {
            ca_file: Some(missing.clone()),
        })
        .unwrap_err();
        assert!(err.to_string().contains("none.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&XmppTls::Verify {
            ca_file: Some(empty),
        })
        .unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }
}
