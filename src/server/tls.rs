//! HTTPS for the shard server: a certificate and key from files, or a local CA and a
//! server certificate it makes itself (`--tls-self-signed DIR`) for `127.0.0.1` and
//! `localhost`, so every AWS tool can trust it with `AWS_CA_BUNDLE` and the agent
//! with `ca_file`. ALPN offers HTTP/2 and HTTP/1.1, as Kinesis does (enhanced fan-out
//! needs HTTP/2).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not go together: {0}")]
    Config(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

/// The files `--tls-self-signed DIR` writes.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A TLS server configuration from PEM files: the certificate chain (server
/// certificate first) and its private key.
pub fn from_files(certificate: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: certificate.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: certificate.to_owned(),
            reason: "no PEM certificate in it".to_owned(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes a CA (`ca.pem`) and a server certificate it signed for `127.0.0.1`,
/// `::1` and `localhost` (`server.pem`, `server.key`, the key readable by its owner
/// only) into `dir`, made fresh on every start.
pub fn self_signed(dir: &Path) -> Result<SelfSigned, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let ca_key = KeyPair::generate().map_err(generate)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "shardcar server local CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_certificate = ca.self_signed(&ca_key).map_err(generate)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(generate)?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut server = CertificateParams::new(names).map_err(generate)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "shardcar server");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = server.signed_by(&key, &issuer).map_err(generate)?;

    let write = |path: PathBuf, text: String, private: bool| -> Result<PathBuf, TlsError> {
        let failed = |source| TlsError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(failed)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(failed)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(failed)?;
        Ok(path)
    };
    Ok(SelfSigned {
        ca: write(dir.join("ca.pem"), ca_certificate.pem(), false)?,
        certificate: write(dir.join("server.pem"), certificate.pem(), false)?,
        key: write(dir.join("server.key"), key.serialize_pem(), true)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_files_load_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let written = self_signed(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let config =
            from_files(&written.certificate, &written.key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&written.key)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_or_mismatched_file_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("nope.pem");
        let error = from_files(&missing, &missing).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("nope.pem")),
            "{error:?}"
        );
        let one = self_signed(&dir.path().join("one")).unwrap_or_else(|e| panic!("{e}"));
        let two = self_signed(&dir.path().join("two")).unwrap_or_else(|e| panic!("{e}"));
        let error = from_files(&one.certificate, &two.key)
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("do not go together")),
            "{error:?}"
        );
    }
}
