//! Fetching the model file: a local path or `file://`, or an object store
//! (`s3://` with an optional S3-compatible endpoint, `gs://`, `az://`) or
//! `http(s)://` through the maintained `object_store` crate, with credentials
//! and endpoints from the usual environment variables; then an optional
//! sha256 check.

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use url::Url;

use crate::Error;

/// Reads the whole model file at `uri`.
pub async fn fetch(uri: &str) -> Result<Vec<u8>, Error> {
    let fail = |reason: String| Error::Fetch {
        uri: redact(uri),
        reason,
    };
    let url = match Url::parse(uri) {
        Ok(url) if url.scheme().len() > 1 => url,
        // No scheme (or a Windows drive letter): a local path.
        _ => return tokio::fs::read(uri).await.map_err(|e| fail(e.to_string())),
    };
    let store: Box<dyn ObjectStore> = match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| fail("not a local path".into()))?;
            return tokio::fs::read(path).await.map_err(|e| fail(e.to_string()));
        }
        "s3" => Box::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(uri)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        ),
        "gs" => Box::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(uri)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        ),
        "az" | "azure" | "abfs" | "abfss" => Box::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(uri)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        ),
        "http" | "https" => Box::new(
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
    let object = store.get(&path).await.map_err(|e| fail(e.to_string()))?;
    let bytes = object.bytes().await.map_err(|e| fail(e.to_string()))?;
    Ok(bytes.to_vec())
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
}
