//! TLS on the ingest listener. The certificate chain and key come from PEM
//! files that are checked every few seconds and re-read when they change, so a
//! rotated certificate (cert-manager, a renewed Secret) is served without a
//! restart; a broken pair on disk never replaces the one in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::TlsFiles;

/// Why a certificate and key pair could not be loaded; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: invalid PEM: {source}")]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path}: no PEM private key found")]
    NoKey { path: PathBuf },
    #[error("{key} does not fit the certificate in {cert}: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("building the TLS configuration: {0}")]
    Config(rustls::Error),
}

/// What a check of the files found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded,
}

/// Hands rustls the pair in force for every new connection, and swaps in a
/// new one when the files change. Connections already open keep theirs.
#[derive(Debug)]
pub struct CertificateResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// Digest of the file contents last tried, loaded or not, so that a broken
    /// pair is reported once per change rather than at every check.
    last_seen: Mutex<[u8; 32]>,
}

/// The one crypto provider this service uses. Set explicitly, because if
/// another dependency ever enables a second rustls provider, the implicit
/// default would be ambiguous and rustls would panic at start.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CertificateResolver {
    /// Loads the pair; at start a bad pair is an error, not a warning.
    pub fn load(files: TlsFiles) -> Result<CertificateResolver, TlsError> {
        let provider = crypto_provider();
        let (cert_pem, key_pem) = read_pair(&files)?;
        let certified = certified_key(&files, &cert_pem, &key_pem, &provider)?;
        Ok(CertificateResolver {
            last_seen: Mutex::new(digest(&cert_pem, &key_pem)),
            files,
            provider,
            current: ArcSwap::from_pointee(certified),
        })
    }

    /// Re-reads both files (blocking, small) and swaps in the pair if it
    /// changed and is valid. On error the previous pair stays in force.
    pub fn reload_if_changed(&self) -> Result<Reload, TlsError> {
        let (cert_pem, key_pem) = read_pair(&self.files)?;
        let seen = digest(&cert_pem, &key_pem);
        {
            let mut last_seen = self.last_seen.lock().expect("tls digest lock");
            if *last_seen == seen {
                return Ok(Reload::Unchanged);
            }
            *last_seen = seen;
        }
        let certified = certified_key(&self.files, &cert_pem, &key_pem, &self.provider)?;
        self.current.store(Arc::new(certified));
        Ok(Reload::Reloaded)
    }

    /// The certificate chain in force (DER), first the end-entity certificate.
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.load().cert.clone()
    }

    /// A server configuration that asks this resolver for every handshake.
    /// actix-web adds the `h2` and `http/1.1` ALPN protocols itself.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_pair(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    Ok((read(&files.cert_file)?, read(&files.key_file)?))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn digest(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    // The length first, so that bytes moving from one file to the other still count as a change.
    Sha256::new()
        .chain_update((cert_pem.len() as u64).to_le_bytes())
        .chain_update(cert_pem)
        .chain_update(key_pem)
        .finalize()
        .into()
}

/// Parses the PEM pair and checks that the key belongs to the end-entity certificate.
fn certified_key(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Pem { path, source }
    };
    let mut chain = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(cert_pem) {
        chain.push(certificate.map_err(pem_error(&files.cert_file))?);
    }
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert_file.clone(),
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: files.key_file.clone(),
            });
        }
        Err(source) => return Err(pem_error(&files.key_file)(source)),
    };
    // from_der also parses the certificate and compares its public key with the key's.
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed(name: &str) -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn files(name: &str, cert: &str, key: &str) -> (Scratch, TlsFiles) {
        let dir = std::env::temp_dir().join(format!("ingest-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        let files = TlsFiles {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
        };
        (Scratch(dir), files)
    }

    #[test]
    fn a_valid_pair_loads_and_a_new_one_replaces_it() {
        let (cert, key) = self_signed("one.test");
        let (_dir, files) = files("valid", &cert, &key);
        let resolver = CertificateResolver::load(files.clone()).unwrap();
        let first = resolver.current_chain();
        assert!(matches!(
            resolver.reload_if_changed().unwrap(),
            Reload::Unchanged
        ));

        let (cert, key) = self_signed("two.test");
        std::fs::write(&files.cert_file, cert).unwrap();
        std::fs::write(&files.key_file, key).unwrap();
        assert!(matches!(
            resolver.reload_if_changed().unwrap(),
            Reload::Reloaded
        ));
        assert_ne!(resolver.current_chain(), first);
    }

    #[test]
    fn broken_pairs_are_refused_by_file_and_keep_the_pair_in_force() {
        let (cert, key) = self_signed("one.test");
        let (_other_cert, other_key) = self_signed("other.test");
        let (_dir, files) = files("broken", &cert, &key);
        let resolver = CertificateResolver::load(files.clone()).unwrap();
        let in_force = resolver.current_chain();

        std::fs::write(&files.cert_file, "garbage").unwrap();
        let error = resolver.reload_if_changed().unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains("cert.pem"), "{error}");
        // Reported once per change, not at every check.
        assert!(matches!(
            resolver.reload_if_changed().unwrap(),
            Reload::Unchanged
        ));

        std::fs::write(&files.cert_file, &cert).unwrap();
        std::fs::write(&files.key_file, other_key).unwrap();
        let error = resolver.reload_if_changed().unwrap_err();
        assert!(matches!(error, TlsError::Pair { .. }), "{error}");

        std::fs::write(&files.key_file, "-----BEGIN PRIVATE KEY-----\n!!\n").unwrap();
        let error = resolver.reload_if_changed().unwrap_err();
        assert!(error.to_string().contains("key.pem"), "{error}");
        assert_eq!(resolver.current_chain(), in_force);

        std::fs::remove_file(&files.key_file).unwrap();
        let error = resolver.reload_if_changed().unwrap_err();
        assert!(matches!(error, TlsError::Read { .. }), "{error}");
        assert_eq!(resolver.current_chain(), in_force);
    }

    #[test]
    fn a_missing_or_keyless_pair_fails_at_start_naming_the_file() {
        let (cert, _key) = self_signed("one.test");
        let (_dir, files) = files("start", &cert, "no key here");
        let error = CertificateResolver::load(files.clone()).unwrap_err();
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");
        assert!(error.to_string().contains("key.pem"), "{error}");

        std::fs::remove_file(&files.cert_file).unwrap();
        let error = CertificateResolver::load(files).unwrap_err();
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }
}
