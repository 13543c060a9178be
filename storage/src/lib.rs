//! Where aimass keeps its bytes: a local path or `file://`, an object store
//! (`s3://` with an optional S3-compatible endpoint, `gs://`, `az://`) or
//! `http(s)://`, all through the maintained `object_store` crate; digests;
//! and the rules for the credentials a tenant may give.
//!
//! Used by the inference server (fetching its model, archiving its audit
//! trail, validating an artifact) and by the operator (registering versions
//! and reading the registry), so both agree on what a location is.
//!
//! The server (in the tenant's pod) reads credentials from the usual
//! environment variables. The operator passes the keys of a Secret the
//! tenant names, spelled the same way (`AWS_ACCESS_KEY_ID`,
//! `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, …), as [`Credentials::Static`]: only the
//! static keys of [`STATIC_KEYS`] are accepted, and with none the store is
//! read anonymously, so a tenant can never make the operator use a
//! credential file, a credential-provider URL, a metadata endpoint or the
//! operator's own (or the node's) identity.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use url::Url;

mod error;

pub use error::Error;

/// Where the settings of an object store come from.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// The process environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as the
    /// inference server and trainers use it in the tenant's own pods.
    #[default]
    Environment,
    /// Static keys a tenant gave (the keys of a Secret), named like the
    /// environment variables. Only [`STATIC_KEYS`] are accepted; without
    /// keys the store is read anonymously, never with an ambient identity.
    Static(BTreeMap<String, String>),
}

/// The settings a tenant may give as static keys: keys, tokens, region,
/// endpoint and the service-account key's JSON content. Anything naming a
/// file, a credential-provider URL, a metadata endpoint, a proxy or any other
/// setting is refused.
pub const STATIC_KEYS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_ENDPOINT",
];

/// The static keys that sign requests; without one of its provider's, a
/// store is read anonymously.
const SECRET_KEYS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
];

/// The only token endpoint a service-account key may name: the key's JSON
/// carries a `token_uri` the client posts to, which must not be a tenant's.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Refuses static settings outside [`STATIC_KEYS`], and a service-account
/// key that is not JSON or names another token endpoint.
pub fn check_static(settings: &BTreeMap<String, String>) -> Result<(), Error> {
    let unknown: Vec<&str> = settings
        .keys()
        .map(String::as_str)
        .filter(|key| !STATIC_KEYS.contains(key))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Setting {
            key: unknown.join(", "),
            reason: "only static keys, tokens, region and endpoint are accepted, never a file, a credential-provider URL, a metadata endpoint or another setting".into(),
        });
    }
    for (key, value) in settings {
        let refuse = |reason: &str| Error::Setting {
            key: key.clone(),
            reason: reason.to_owned(),
        };
        if key == "GOOGLE_SERVICE_ACCOUNT_KEY" {
            let json: serde_json::Value = serde_json::from_str(value)
                .map_err(|_| refuse("must hold the service account's JSON key itself"))?;
            match json.get("token_uri") {
                None => {}
                Some(uri) if uri.as_str() == Some(GOOGLE_TOKEN_URI) => {}
                Some(_) => return Err(refuse(&format!("token_uri must be {GOOGLE_TOKEN_URI}"))),
            }
        }
    }
    Ok(())
}

/// How long reading a small object may take.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a streamed read may wait for its next bytes.
pub const STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// An object's bytes as they arrive.
pub type ByteStream = futures::stream::BoxStream<'static, Result<bytes::Bytes, Error>>;

/// Writes a large object in parts; see [`Location::writer`].
pub struct Writer {
    inner: object_store::buffered::BufWriter,
    uri: String,
}

impl Writer {
    /// Adds `bytes` to the object.
    pub async fn write(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        self.inner
            .put(bytes.into())
            .await
            .map_err(|e| Error::Fetch {
                uri: self.uri.clone(),
                reason: e.to_string(),
            })
    }

    /// Completes the object.
    pub async fn finish(mut self) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt;
        self.inner.shutdown().await.map_err(|e| Error::Fetch {
            uri: self.uri.clone(),
            reason: e.to_string(),
        })
    }
}

/// The most objects a listing returns.
pub const LIST_LIMIT: usize = 100_000;

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

    /// Reads a small object of at most `limit` bytes within [`READ_TIMEOUT`],
    /// or `None` when it does not exist. For objects a tenant controls: a
    /// larger, endless or stalled object is an error, never a read without
    /// end.
    pub async fn get_if_exists(&self, limit: usize) -> Result<Option<Vec<u8>>, Error> {
        self.get_bounded(limit, READ_TIMEOUT).await
    }

    /// Reads an object of at most `limit` bytes within `timeout`, or `None`
    /// when it does not exist; a larger, endless or stalled object is an
    /// error.
    pub async fn get_bounded(
        &self,
        limit: usize,
        timeout: std::time::Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        use futures::StreamExt;
        let read = async {
            let mut stream = match self.store.get(&self.path).await {
                Ok(object) => object.into_stream(),
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            };
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.fail(e))?;
                if bytes.len() + chunk.len() > limit {
                    return Err(Error::TooLarge {
                        uri: self.uri.clone(),
                        limit,
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Some(bytes))
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| self.fail(format!("not read within {timeout:?}")))?
    }

    /// Writes the whole object, replacing what was there.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<(), Error> {
        self.store
            .put(&self.path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Whether the object exists (its metadata is read, not its bytes).
    pub async fn exists(&self) -> Result<bool, Error> {
        match self.store.head(&self.path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Writes the object only if there is none: an existing object is never
    /// replaced (an error says so). Stores without conditional writes get a
    /// look first, then the write.
    pub async fn put_new(&self, bytes: Vec<u8>) -> Result<(), Error> {
        // A payload shares its bytes: the fallback write copies nothing.
        let payload = object_store::PutPayload::from(bytes);
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        let written = match self
            .store
            .put_opts(&self.path, payload.clone(), options)
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) if !self.exists().await? => {
                self.store.put(&self.path, payload).await
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                return Err(self.fail("the object exists and is never replaced"));
            }
            written => written,
        };
        match written {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(self.fail("the object exists and is never replaced"))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Names (relative to this location) of the objects below it, at any
    /// depth; more than [`LIST_LIMIT`] objects, or a listing slower than
    /// [`READ_TIMEOUT`], is an error.
    pub async fn list(&self) -> Result<Vec<String>, Error> {
        use futures::{StreamExt, TryStreamExt};
        let prefix = self.path.clone();
        let listing = self
            .store
            .list(Some(&prefix))
            .take(LIST_LIMIT + 1)
            .try_collect::<Vec<_>>();
        let objects = tokio::time::timeout(READ_TIMEOUT, listing)
            .await
            .map_err(|_| self.fail(format!("no listing within {READ_TIMEOUT:?}")))?
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                e => Err(self.fail(e)),
            })?;
        if objects.len() > LIST_LIMIT {
            return Err(self.fail(format!("more than {LIST_LIMIT} objects below it")));
        }
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

    /// The object's bytes as they arrive, each chunk within [`STALL_TIMEOUT`]
    /// of the last, or `None` when it does not exist. For large objects read
    /// in a tenant's own pod (a data set); the reader bounds what it keeps.
    pub async fn stream(&self) -> Result<Option<ByteStream>, Error> {
        use futures::StreamExt;
        let object = match self.store.get(&self.path).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let uri = self.uri.clone();
        let chunks = object.into_stream();
        Ok(Some(
            futures::stream::unfold(Some(chunks), move |state| {
                let uri = uri.clone();
                async move {
                    let mut chunks = state?;
                    let fail = |reason: String| Some((Err(Error::Fetch { uri, reason }), None));
                    match tokio::time::timeout(STALL_TIMEOUT, chunks.next()).await {
                        Ok(None) => None,
                        Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
                        Ok(Some(Err(e))) => fail(e.to_string()),
                        Err(_) => fail(format!("no bytes came for {STALL_TIMEOUT:?}")),
                    }
                }
            })
            .boxed(),
        ))
    }

    /// The object's size in bytes, or `None` when it does not exist.
    pub async fn size(&self) -> Result<Option<u64>, Error> {
        match self.store.head(&self.path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Bytes `range` of the object, read within [`STALL_TIMEOUT`]; a range
    /// of more than `limit` bytes is refused before anything is read.
    pub async fn read_range(
        &self,
        range: std::ops::Range<u64>,
        limit: u64,
    ) -> Result<bytes::Bytes, Error> {
        let length = range.end.saturating_sub(range.start);
        if length > limit {
            return Err(Error::TooLarge {
                uri: self.uri.clone(),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        tokio::time::timeout(STALL_TIMEOUT, self.store.get_range(&self.path, range))
            .await
            .map_err(|_| self.fail(format!("not read within {STALL_TIMEOUT:?}")))?
            .map_err(|e| self.fail(e))
    }

    /// A writer of a large object, uploaded in parts as bytes come: the
    /// object appears only when [`Writer::finish`] returns, so a writer
    /// killed half-way leaves no object (on `file://`, a staging file).
    pub fn writer(&self) -> Writer {
        Writer {
            inner: object_store::buffered::BufWriter::new(
                Arc::clone(&self.store),
                self.path.clone(),
            )
            .with_max_concurrency(2),
            uri: self.uri.clone(),
        }
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
    if let Credentials::Static(settings) = credentials {
        check_static(settings)?;
    }
    // The cloud builders share no trait; each takes settings the same way.
    macro_rules! configured {
        ($builder:ty, $provider:literal) => {{
            let mut builder = match credentials {
                Credentials::Environment => <$builder>::from_env(),
                Credentials::Static(_) => <$builder>::new(),
            };
            for (key, value) in settings(credentials, $provider) {
                if let Ok(key) = key.parse() {
                    builder = builder.with_config(key, value);
                }
            }
            if let Credentials::Static(map) = credentials
                && !SECRET_KEYS
                    .iter()
                    .any(|k| k.starts_with($provider) && map.contains_key(*k))
            {
                // No key given: anonymous, never the process's or the node's
                // identity (instance metadata, workload identity, files).
                builder = builder.with_skip_signature(true);
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
        Credentials::Static(map) => Some(map),
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

/// The object `name` in the same folder as the object at `uri` (its query
/// string dropped): where a version's other files sit beside its artifact.
pub fn sibling(uri: &str, name: &str) -> String {
    match Url::parse(uri) {
        Ok(url) if url.scheme().len() > 1 => url.join(name).map_or_else(
            |_| format!("{}/{name}", uri.rsplit_once('/').map_or(uri, |(d, _)| d)),
            String::from,
        ),
        _ => std::path::Path::new(uri)
            .with_file_name(name)
            .display()
            .to_string(),
    }
}

/// The URI without credentials or query string, for messages and records.
pub fn redact(uri: &str) -> String {
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

    #[test]
    fn a_sibling_sits_in_the_same_folder() {
        for (uri, sibling_uri) in [
            (
                "s3://bucket/models/fraud/v3/model.onnx",
                "s3://bucket/models/fraud/v3/baseline.json",
            ),
            (
                "file:///registry/v1/model.onnx",
                "file:///registry/v1/baseline.json",
            ),
            (
                "https://h/m/model.onnx?sig=secret",
                "https://h/m/baseline.json",
            ),
            ("/tmp/v1/model.onnx", "/tmp/v1/baseline.json"),
        ] {
            assert_eq!(sibling(uri, "baseline.json"), sibling_uri, "{uri}");
        }
    }

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
        assert!(model.get_if_exists(1024).await.unwrap().is_none());
        assert!(
            root.list().await.unwrap().is_empty(),
            "a missing prefix lists nothing"
        );
        model.put(b"onnx".to_vec()).await.unwrap();
        // put_new never replaces.
        assert!(model.put_new(b"other".to_vec()).await.is_err());
        assert_eq!(model.get_if_exists(1024).await.unwrap().unwrap(), b"onnx");
        root.child("fraud/4/new")
            .put_new(b"x".to_vec())
            .await
            .unwrap();
        root.child("fraud/4/new").delete().await.unwrap();
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
    fn static_settings_pick_the_provider_keys() {
        let credentials = Credentials::Static(BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_owned(), "id".to_owned()),
            ("AZURE_STORAGE_ACCOUNT_NAME".to_owned(), "acct".to_owned()),
        ]));
        let aws: Vec<_> = settings(&credentials, "AWS_").collect();
        assert_eq!(aws, [("aws_access_key_id".to_owned(), "id")]);
        // The key id was taken, so the builder asks for the matching secret.
        let err = open("s3://bucket/models", &credentials).unwrap_err();
        assert!(err.to_string().contains("SecretAccessKey"), "{err}");
        let Credentials::Static(mut map) = credentials else {
            unreachable!()
        };
        map.insert("AWS_SECRET_ACCESS_KEY".into(), "secret".into());
        open("s3://bucket/models", &Credentials::Static(map)).unwrap();
        assert!(open("ftp://host/x", &Credentials::Environment).is_err());
        // No secret key: anonymous, for every provider.
        let account = BTreeMap::from([("AZURE_STORAGE_ACCOUNT_NAME".into(), "acct".into())]);
        for uri in ["s3://bucket/m", "gs://bucket/m", "az://container/m"] {
            open(uri, &Credentials::Static(account.clone())).unwrap();
        }
    }

    #[test]
    fn static_settings_never_name_files_providers_or_other_settings() {
        for key in [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_METADATA_ENDPOINT",
            "AWS_IMDSV1_FALLBACK",
            "AWS_PROXY_URL",
            "AWS_SKIP_SIGNATURE",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_MSI_ENDPOINT",
            "AZURE_USE_AZURE_CLI",
            "AZURE_STORAGE_CLIENT_SECRET",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "aws_access_key_id",
            "HOME",
        ] {
            let credentials = Credentials::Static(BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".to_owned(), "id".to_owned()),
                (
                    key.to_owned(),
                    "/var/run/secrets/kubernetes.io/serviceaccount/token".to_owned(),
                ),
            ]));
            let err = open("s3://bucket/m", &credentials).unwrap_err();
            assert!(
                matches!(&err, Error::Setting { key: k, .. } if k == key),
                "{key}: {err}"
            );
            assert!(err.to_string().contains(key), "{err}");
        }
        let key = |json: &str| {
            Credentials::Static(BTreeMap::from([(
                "GOOGLE_SERVICE_ACCOUNT_KEY".to_owned(),
                json.to_owned(),
            )]))
        };
        let err = open("gs://b/m", &key("/etc/key.json")).unwrap_err();
        assert!(err.to_string().contains("JSON key itself"), "{err}");
        let err = open(
            "gs://b/m",
            &key(r#"{"type": "service_account", "token_uri": "http://10.0.0.1/steal"}"#),
        )
        .unwrap_err();
        assert!(err.to_string().contains("token_uri"), "{err}");
    }
}
