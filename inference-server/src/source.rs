//! Where models live: a local path or `file://`, an object store (`s3://`
//! with an optional S3-compatible endpoint, `gs://`, `az://`) or
//! `http(s)://`, all through the maintained `object_store` crate; then an
//! optional sha256 check.
//!
//! The server reads credentials from the usual environment variables; the
//! operator passes the keys of a Secret the user names, spelled the same way
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, …). Both open locations with [`open`].

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use url::Url;

use crate::Error;

/// Where the settings of an object store come from.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// The process environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as the
    /// inference server and trainers use it.
    #[default]
    Environment,
    /// Explicit settings, named like the environment variables, e.g. the
    /// keys of a Secret.
    Settings(BTreeMap<String, String>),
}

/// An opened location: a store and a path inside it.
#[derive(Clone, Debug)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The object (or prefix) inside the store.
    pub path: StorePath,
    /// The URI, without credentials, for messages.
    pub uri: String,
}

impl Location {
    /// The location `segment` (which may hold `/`) below this one.
    pub fn child(&self, segment: &str) -> Self {
        let mut path = self.path.clone();
        for part in segment.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        Self {
            store: Arc::clone(&self.store),
            path,
            uri: format!(
                "{}/{}",
                self.uri.trim_end_matches('/'),
                segment.trim_matches('/')
            ),
        }
    }

    /// Reads the whole object.
    pub async fn get(&self) -> Result<Vec<u8>, Error> {
        let object = self.store.get(&self.path).await.map_err(|e| self.fail(e))?;
        let bytes = object.bytes().await.map_err(|e| self.fail(e))?;
        Ok(bytes.to_vec())
    }

    /// Reads the whole object, or `None` when it does not exist.
    pub async fn get_if_exists(&self) -> Result<Option<Vec<u8>>, Error> {
        match self.store.get(&self.path).await {
            Ok(object) => Ok(Some(
                object.bytes().await.map_err(|e| self.fail(e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Writes the whole object, replacing what was there.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<(), Error> {
        self.store
            .put(&self.path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Names (relative to this location) of the objects below it, at any depth.
    pub async fn list(&self) -> Result<Vec<String>, Error> {
        use futures::TryStreamExt;
        let prefix = self.path.clone();
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                e => Err(self.fail(e)),
            })?;
        let mut names: Vec<String> = objects
            .into_iter()
            .filter_map(|meta| {
                meta.location.prefix_match(&prefix).map(|parts| {
                    parts
                        .map(|p| p.as_ref().to_owned())
                        .collect::<Vec<_>>()
                        .join("/")
                })
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes the object; a missing object is not an error.
    pub async fn delete(&self) -> Result<(), Error> {
        match self.store.delete(&self.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::Fetch {
            uri: self.uri.clone(),
            reason: e.to_string(),
        }
    }
}

/// Reads the whole model file at `uri`, with credentials from the environment.
pub async fn fetch(uri: &str) -> Result<Vec<u8>, Error> {
    if Url::parse(uri).map_or(true, |url| url.scheme().len() <= 1) {
        // No scheme (or a Windows drive letter): a local path.
        return tokio::fs::read(uri).await.map_err(|e| Error::Fetch {
            uri: uri.to_owned(),
            reason: e.to_string(),
        });
    }
    open(uri, &Credentials::Environment)?.get().await
}

/// Opens the store that `uri` names and the path inside it.
pub fn open(uri: &str, credentials: &Credentials) -> Result<Location, Error> {
    let shown = redact(uri);
    let fail = |reason: String| Error::Fetch {
        uri: shown.clone(),
        reason,
    };
    let url = Url::parse(uri).map_err(|e| fail(e.to_string()))?;
    // The cloud builders share no trait; each takes settings the same way.
    macro_rules! configured {
        ($builder:ty, $provider:literal) => {{
            let mut builder = match credentials {
                Credentials::Environment => <$builder>::from_env(),
                Credentials::Settings(_) => <$builder>::new(),
            };
            for (key, value) in settings(credentials, $provider) {
                if let Ok(key) = key.parse() {
                    builder = builder.with_config(key, value);
                }
            }
            let store = builder
                .with_url(uri)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            Arc::new(store)
        }};
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => {
            // Rooted at `/`, so the URI's path is the object's path.
            Arc::new(object_store::local::LocalFileSystem::new().with_automatic_cleanup(true))
        }
        "s3" => configured!(object_store::aws::AmazonS3Builder, "AWS_"),
        "gs" => configured!(object_store::gcp::GoogleCloudStorageBuilder, "GOOGLE_"),
        "az" | "azure" | "abfs" | "abfss" => {
            configured!(object_store::azure::MicrosoftAzureBuilder, "AZURE_")
        }
        "http" | "https" => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(url.origin().ascii_serialization())
                // The URI itself says whether plain HTTP is wanted.
                .with_client_options(
                    object_store::ClientOptions::new().with_allow_http(url.scheme() == "http"),
                )
                .build()
                .map_err(|e| fail(e.to_string()))?,
        ),
        other => return Err(fail(format!("scheme {other}:// is not supported"))),
    };
    let key = url.path().trim_start_matches('/');
    let path = StorePath::from_url_path(key).map_err(|e| fail(e.to_string()))?;
    Ok(Location {
        store,
        path,
        uri: shown,
    })
}

/// The explicit settings for one provider, keyed as `object_store` expects
/// (lower case, as its `from_env` builders do with environment variables).
fn settings<'a>(
    credentials: &'a Credentials,
    provider: &'a str,
) -> impl Iterator<Item = (String, &'a str)> + 'a {
    let map = match credentials {
        Credentials::Environment => None,
        Credentials::Settings(map) => Some(map),
    };
    map.into_iter()
        .flatten()
        .filter(move |(key, _)| key.starts_with(provider))
        .map(|(key, value)| (key.to_ascii_lowercase(), value.as_str()))
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fails unless `bytes` hash to `expected` (hex, any case).
pub fn verify_sha256(bytes: &[u8], expected: &str) -> Result<(), Error> {
    let actual = sha256_hex(bytes);
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(Error::Sha256Mismatch {
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// The URI without credentials or query string, for messages.
fn redact(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_local_paths_and_file_uris_and_checks_sha256() {
        let path = std::env::temp_dir().join(format!("aimass-source-test-{}", std::process::id()));
        std::fs::write(&path, b"model bytes").unwrap();
        let by_path = fetch(path.to_str().unwrap()).await.unwrap();
        let by_uri = fetch(&format!("file://{}", path.display())).await.unwrap();
        assert_eq!(by_path, b"model bytes");
        assert_eq!(by_uri, by_path);
        let digest = sha256_hex(&by_path);
        assert!(verify_sha256(&by_path, &digest.to_uppercase()).is_ok());
        let err = verify_sha256(&by_path, &"0".repeat(64)).unwrap_err();
        assert!(err.to_string().contains(&digest), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn failures_name_the_uri_without_secrets() {
        let err = fetch("https://user:hunter2@127.0.0.1:9/m.onnx?sig=abc")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("hunter2") && !err.contains("sig=abc"),
            "{err}"
        );
        let err = fetch("ftp://example.com/m.onnx")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
        assert!(fetch("/no/such/model.onnx").await.is_err());
    }

    #[tokio::test]
    async fn a_location_writes_lists_reads_and_deletes() {
        let dir = std::env::temp_dir().join(format!("aimass-store-test-{}", std::process::id()));
        let root = open(
            &format!("file://{}", dir.display()),
            &Credentials::Environment,
        )
        .unwrap();
        let model = root.child("fraud/3/model.onnx");
        assert!(model.get_if_exists().await.unwrap().is_none());
        assert!(
            root.list().await.unwrap().is_empty(),
            "a missing prefix lists nothing"
        );
        model.put(b"onnx".to_vec()).await.unwrap();
        root.child("fraud/3/version.json")
            .put(b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(model.get().await.unwrap(), b"onnx");
        assert_eq!(
            root.child("fraud").list().await.unwrap(),
            ["3/model.onnx", "3/version.json"]
        );
        assert!(model.uri.ends_with("/fraud/3/model.onnx"), "{}", model.uri);
        model.delete().await.unwrap();
        model.delete().await.unwrap();
        assert_eq!(
            root.child("fraud").list().await.unwrap(),
            ["3/version.json"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn explicit_settings_pick_the_provider_keys() {
        let credentials = Credentials::Settings(BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_owned(), "id".to_owned()),
            ("AZURE_STORAGE_ACCOUNT_NAME".to_owned(), "acct".to_owned()),
        ]));
        let aws: Vec<_> = settings(&credentials, "AWS_").collect();
        assert_eq!(aws, [("aws_access_key_id".to_owned(), "id")]);
        // The key id was taken, so the builder asks for the matching secret.
        let err = open("s3://bucket/models", &credentials).unwrap_err();
        assert!(err.to_string().contains("SecretAccessKey"), "{err}");
        let Credentials::Settings(mut map) = credentials else {
            unreachable!()
        };
        map.insert("AWS_SECRET_ACCESS_KEY".into(), "secret".into());
        open("s3://bucket/models", &Credentials::Settings(map)).unwrap();
        assert!(open("ftp://host/x", &Credentials::Environment).is_err());
    }
}
