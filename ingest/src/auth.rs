//! Who is writing: API keys from the keys file, held only as SHA-256 digests,
//! and the credentials a request carries (`sts-api-key`, basic auth with user
//! `apikey`, or the agent's `api_key` query parameter).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::config::SeriesLimits;
use crate::rate_limit::{Quota, RateLimiters, TenantLimiter};

/// One tenant as the keys file describes it.
#[derive(Debug)]
pub struct Tenant {
    pub name: Arc<str>,
    pub limits: SeriesLimits,
    pub limiter: Option<TenantLimiter>,
    /// Partitions of the samples topic its series are spread over (its
    /// shard, `proto::shard`); 0: every partition.
    pub shard_size: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "no API key: send an sts-api-key header, or basic auth with username apikey and the key as password"
    )]
    Missing,
    #[error("basic auth username must be apikey")]
    WrongUsername,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("unknown API key")]
    UnknownKey,
}

impl AuthError {
    /// A short, closed-set name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::WrongUsername => "wrong_username",
            AuthError::Malformed => "malformed",
            AuthError::UnknownKey => "unknown_key",
        }
    }
}

#[derive(Debug, Error)]
pub enum KeysFileError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: keys entry {index} (tenant {tenant:?}): {problem}")]
    Entry {
        path: PathBuf,
        index: usize,
        tenant: String,
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// One `[[keys]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// The tenant the key writes as: letters, digits, `.`, `_` and `-`.
    tenant: String,
    /// The key in clear; or give `sha256` instead.
    key: Option<String>,
    /// The hex SHA-256 digest of the key.
    sha256: Option<String>,
    /// Sustained samples (and histograms) per second for the tenant; no limit when absent.
    samples_per_second: Option<u32>,
    /// Samples the tenant may send at once above the rate [default: samples_per_second].
    burst_samples: Option<u32>,
    max_labels_per_series: Option<usize>,
    max_label_name_length: Option<usize>,
    max_label_value_length: Option<usize>,
    /// Partitions of the samples topic the tenant's series are spread over,
    /// chosen from its name (docs/scaling.md); every partition when absent
    /// or at least the partition count.
    shard_size: Option<u32>,
}

type KeyDigest = [u8; 32];

/// The keys in force: digest to tenant.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_digest: HashMap<KeyDigest, Arc<Tenant>>,
}

impl KeyStore {
    /// Parses a keys file's text. Every entry must be valid, or none is taken.
    pub fn parse(
        path: &Path,
        text: &str,
        defaults: &SeriesLimits,
        limiters: &RateLimiters,
    ) -> Result<KeyStore, KeysFileError> {
        let file: KeysFile = toml::from_str(text).map_err(|e| KeysFileError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let mut tenants: HashMap<String, Arc<Tenant>> = HashMap::new();
        let mut by_digest = HashMap::new();
        for (index, entry) in file.keys.into_iter().enumerate() {
            let problem = |problem: String| KeysFileError::Entry {
                path: path.to_path_buf(),
                index,
                tenant: entry.tenant.clone(),
                problem,
            };
            if entry.tenant.is_empty()
                || !entry
                    .tenant
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(problem(
                    "tenant must be non-empty letters, digits, '.', '_' or '-'".into(),
                ));
            }
            let digest = match (&entry.key, &entry.sha256) {
                (Some(key), None) if !key.is_empty() => digest_of(key.as_bytes()),
                (None, Some(hex_digest)) => parse_digest(hex_digest)
                    .ok_or_else(|| problem("sha256 must be 64 hex digits".into()))?,
                _ => return Err(problem("give exactly one of key or sha256".into())),
            };
            let limits = SeriesLimits {
                max_labels_per_series: entry
                    .max_labels_per_series
                    .unwrap_or(defaults.max_labels_per_series),
                max_label_name_length: entry
                    .max_label_name_length
                    .unwrap_or(defaults.max_label_name_length),
                max_label_value_length: entry
                    .max_label_value_length
                    .unwrap_or(defaults.max_label_value_length),
            };
            let quota = match entry.samples_per_second {
                Some(0) => return Err(problem("samples_per_second must be positive".into())),
                Some(rate) => Some(Quota {
                    per_second: rate,
                    burst: entry.burst_samples.unwrap_or(rate).max(1),
                }),
                None if entry.burst_samples.is_some() => {
                    return Err(problem("burst_samples needs samples_per_second".into()));
                }
                None => None,
            };
            let shard_size = match entry.shard_size {
                Some(0) => return Err(problem("shard_size must be positive".into())),
                Some(size) => size,
                None => 0,
            };
            // Several keys may share a tenant; they must then agree on its settings.
            let tenant = match tenants.get(&entry.tenant) {
                Some(existing) => {
                    if existing.limits != limits
                        || existing.limiter.as_ref().map(|l| l.quota()) != quota
                    {
                        return Err(problem(
                            "another key of this tenant sets other limits".into(),
                        ));
                    }
                    if existing.shard_size != shard_size {
                        return Err(problem(
                            "another key of this tenant sets another shard_size".into(),
                        ));
                    }
                    existing.clone()
                }
                None => {
                    let name: Arc<str> = Arc::from(entry.tenant.as_str());
                    let limiter = quota.map(|quota| limiters.for_tenant(name.clone(), quota));
                    let tenant = Arc::new(Tenant {
                        name,
                        limits,
                        limiter,
                        shard_size,
                    });
                    tenants.insert(entry.tenant.clone(), tenant.clone());
                    tenant
                }
            };
            if let Some(previous) = by_digest.insert(digest, tenant.clone()) {
                if previous.name != tenant.name {
                    return Err(problem("the same key is given for two tenants".into()));
                }
            }
        }
        Ok(KeyStore { by_digest })
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The tenant of `key`. The map is indexed by the key's digest, which tells
    /// an attacker timing it nothing about any key; the final equality is constant-time.
    pub fn tenant_of(&self, key: &[u8]) -> Option<Arc<Tenant>> {
        let digest = digest_of(key);
        let (stored, tenant) = self.by_digest.get_key_value(&digest)?;
        bool::from(stored.ct_eq(&digest)).then(|| tenant.clone())
    }
}

fn digest_of(key: &[u8]) -> KeyDigest {
    Sha256::digest(key).into()
}

fn parse_digest(text: &str) -> Option<KeyDigest> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// The key store in force, swapped whole when the keys file changes.
pub struct ApiKeys {
    path: PathBuf,
    defaults: SeriesLimits,
    limiters: RateLimiters,
    current: RwLock<Arc<KeyStore>>,
    last_text: RwLock<String>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded { keys: usize },
}

impl ApiKeys {
    /// Loads the keys file; a broken file at start is an error.
    pub fn load(
        path: &Path,
        defaults: SeriesLimits,
        limiters: RateLimiters,
    ) -> Result<ApiKeys, KeysFileError> {
        let text = read(path)?;
        let store = KeyStore::parse(path, &text, &defaults, &limiters)?;
        Ok(ApiKeys {
            path: path.to_path_buf(),
            defaults,
            limiters,
            current: RwLock::new(Arc::new(store)),
            last_text: RwLock::new(text),
        })
    }

    pub fn current(&self) -> Arc<KeyStore> {
        self.current.read().expect("key store lock").clone()
    }

    pub fn limiters(&self) -> &RateLimiters {
        &self.limiters
    }

    /// Re-reads the file; a broken file keeps the keys in force and returns the error.
    pub fn reload_if_changed(&self) -> Result<Reload, KeysFileError> {
        let text = read(&self.path)?;
        if *self.last_text.read().expect("keys text lock") == text {
            return Ok(Reload::Unchanged);
        }
        let store = KeyStore::parse(&self.path, &text, &self.defaults, &self.limiters)?;
        let keys = store.len();
        *self.current.write().expect("key store lock") = Arc::new(store);
        *self.last_text.write().expect("keys text lock") = text;
        Ok(Reload::Reloaded { keys })
    }

    /// Authenticates by `sts-api-key`, basic auth, or (when allowed) a query key.
    pub fn authenticate(
        &self,
        api_key_header: Option<&[u8]>,
        authorization: Option<&[u8]>,
        query_key: Option<&str>,
    ) -> Result<Arc<Tenant>, AuthError> {
        let key = extract_key(api_key_header, authorization, query_key)?;
        self.current().tenant_of(&key).ok_or(AuthError::UnknownKey)
    }
}

fn read(path: &Path) -> Result<String, KeysFileError> {
    std::fs::read_to_string(path).map_err(|source| KeysFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Which credential form [`extract_key`] takes a request's key from, named
/// for logs and metrics (`header`, `basic`, `authorization` for another
/// scheme, `query`, or `none`).
pub fn credential_form(
    api_key_header: Option<&[u8]>,
    authorization: Option<&[u8]>,
    query_key: Option<&str>,
) -> &'static str {
    if api_key_header.is_some_and(|key| !key.trim_ascii().is_empty()) {
        return "header";
    }
    if let Some(header) = authorization {
        let header = header.trim_ascii();
        let basic = header
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"basic "));
        return if basic { "basic" } else { "authorization" };
    }
    if query_key.is_some_and(|key| !key.is_empty()) {
        return "query";
    }
    "none"
}

/// The key a request presents, from the first credential form it carries.
pub fn extract_key(
    api_key_header: Option<&[u8]>,
    authorization: Option<&[u8]>,
    query_key: Option<&str>,
) -> Result<Vec<u8>, AuthError> {
    if let Some(key) = api_key_header {
        let key = key.trim_ascii();
        if !key.is_empty() {
            return Ok(key.to_vec());
        }
    }
    if let Some(header) = authorization {
        let header = header.trim_ascii();
        let Some(encoded) = header
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
            .map(|_| &header[6..])
        else {
            return Err(AuthError::Malformed);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_ascii())
            .map_err(|_| AuthError::Malformed)?;
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return Err(AuthError::Malformed);
        };
        if &decoded[..colon] != b"apikey" {
            return Err(AuthError::WrongUsername);
        }
        return Ok(decoded[colon + 1..].to_vec());
    }
    if let Some(key) = query_key.filter(|key| !key.is_empty()) {
        return Ok(key.as_bytes().to_vec());
    }
    Err(AuthError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(text: &str) -> Result<KeyStore, KeysFileError> {
        KeyStore::parse(
            Path::new("keys.toml"),
            text,
            &SeriesLimits::default(),
            &RateLimiters::default(),
        )
    }

    #[test]
    fn keys_by_clear_text_or_digest() {
        let digest = hex::encode(Sha256::digest(b"second-key"));
        let keys = store(&format!(
            "[[keys]]\ntenant = \"acme\"\nkey = \"first-key\"\n[[keys]]\ntenant = \"globex\"\nsha256 = \"{digest}\"\nsamples_per_second = 10\n"
        ))
        .unwrap();
        assert_eq!(&*keys.tenant_of(b"first-key").unwrap().name, "acme");
        let globex = keys.tenant_of(b"second-key").unwrap();
        assert_eq!(&*globex.name, "globex");
        assert!(globex.limiter.is_some());
        assert!(keys.tenant_of(b"other").is_none());
    }

    #[test]
    fn a_tenant_has_a_shard_size_that_all_its_keys_agree_on() {
        let keys = store(
            "[[keys]]\ntenant = \"acme\"\nkey = \"k1\"\nshard_size = 3\n[[keys]]\ntenant = \"acme\"\nkey = \"k2\"\nshard_size = 3\n[[keys]]\ntenant = \"globex\"\nkey = \"k3\"\n",
        )
        .unwrap();
        assert_eq!(keys.tenant_of(b"k2").unwrap().shard_size, 3);
        // No entry: every partition.
        assert_eq!(keys.tenant_of(b"k3").unwrap().shard_size, 0);
        let error = store(
            "[[keys]]\ntenant = \"acme\"\nkey = \"k1\"\nshard_size = 3\n[[keys]]\ntenant = \"acme\"\nkey = \"k2\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("another shard_size"), "{error}");
        let error = store("[[keys]]\ntenant = \"acme\"\nkey = \"k1\"\nshard_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("shard_size must be positive"), "{error}");
    }

    #[test]
    fn a_broken_entry_is_named() {
        let error = store("[[keys]]\ntenant = \"acme\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("entry 0") && error.contains("exactly one of key or sha256"),
            "{error}"
        );
        let error = store("[[keys]]\ntenant = \"a/b\"\nkey = \"k\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("tenant must be"), "{error}");
        assert!(store("[[keys]]\ntenant = \"a\"\nkey = \"k\"\ncolour = 1\n").is_err());
    }

    #[test]
    fn the_keys_file_is_reloaded_when_it_changes_and_a_broken_one_keeps_the_keys() {
        let path = std::env::temp_dir().join(format!("keys-reload-{}.toml", std::process::id()));
        std::fs::write(&path, "[[keys]]\ntenant = \"acme\"\nkey = \"old-key\"\n").unwrap();
        let keys = ApiKeys::load(&path, SeriesLimits::default(), RateLimiters::default()).unwrap();
        assert_eq!(keys.reload_if_changed().unwrap(), Reload::Unchanged);

        std::fs::write(&path, "[[keys]]\ntenant = \"acme\"\nkey = \"new-key\"\n").unwrap();
        assert_eq!(
            keys.reload_if_changed().unwrap(),
            Reload::Reloaded { keys: 1 }
        );
        assert!(keys.authenticate(Some(b"new-key"), None, None).is_ok());
        assert_eq!(
            keys.authenticate(Some(b"old-key"), None, None).unwrap_err(),
            AuthError::UnknownKey
        );

        std::fs::write(&path, "[[keys]\ntenant = ").unwrap();
        assert!(keys.reload_if_changed().is_err());
        assert!(
            keys.authenticate(Some(b"new-key"), None, None).is_ok(),
            "a broken file keeps the keys in force"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn credentials_from_header_basic_auth_or_query() {
        let basic = |user_pass: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_pass)
            )
        };
        assert_eq!(extract_key(Some(b"k1"), None, None), Ok(b"k1".to_vec()));
        assert_eq!(
            extract_key(None, Some(basic("apikey:k2").as_bytes()), None),
            Ok(b"k2".to_vec())
        );
        assert_eq!(
            extract_key(None, Some(basic("admin:k2").as_bytes()), None),
            Err(AuthError::WrongUsername)
        );
        assert_eq!(
            extract_key(None, Some(b"Bearer xyz"), None),
            Err(AuthError::Malformed)
        );
        assert_eq!(extract_key(None, None, Some("k3")), Ok(b"k3".to_vec()));
        assert_eq!(extract_key(None, None, None), Err(AuthError::Missing));
    }

    #[test]
    fn the_credential_form_is_the_one_the_key_is_taken_from() {
        assert_eq!(
            credential_form(Some(b"k"), Some(b"Basic eA=="), None),
            "header"
        );
        assert_eq!(
            credential_form(Some(b" "), Some(b"basic eA=="), None),
            "basic"
        );
        assert_eq!(
            credential_form(None, Some(b"Bearer x"), Some("k")),
            "authorization"
        );
        assert_eq!(credential_form(None, None, Some("k")), "query");
        assert_eq!(credential_form(None, None, Some("")), "none");
        assert_eq!(credential_form(None, None, None), "none");
    }
}
