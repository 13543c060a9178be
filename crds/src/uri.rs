//! Artifact and data set locations: the URI forms aimass accepts, parsed once
//! into a typed value that the operator, the trainer contract and the
//! inference server all share.

use std::fmt;
use std::str::FromStr;

use url::Url;

use crate::Error;

/// A parsed location of an artifact, a data set or a storage prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactUri {
    /// `s3://bucket/key`: Amazon S3 or an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key or prefix, without a leading `/`; may be empty.
        key: String,
    },
    /// `gs://bucket/key`: Google Cloud Storage.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Object name or prefix; may be empty.
        key: String,
    },
    /// `az://container/path`: Azure Blob Storage; the account comes from the
    /// credentials.
    Azure {
        /// Container name.
        container: String,
        /// Blob name or prefix; may be empty.
        key: String,
    },
    /// `http://…` or `https://…`: read-only.
    Http(Url),
    /// `file:///absolute/path`: a path on the node or in the pod.
    File {
        /// Absolute path.
        path: String,
    },
    /// `pvc://claim/path`: a path inside a PersistentVolumeClaim of the same
    /// namespace, mounted into the pods that need it.
    Pvc {
        /// Name of the PersistentVolumeClaim.
        claim: String,
        /// Path inside the volume, without a leading `/`; may be empty.
        path: String,
    },
}

impl ArtifactUri {
    /// Whether objects can be written at this location (HTTP is read-only).
    pub fn is_writable(&self) -> bool {
        !matches!(self, Self::Http(_))
    }

    /// The location `segment` below this one, as a storage prefix is extended
    /// to `<prefix>/<model>/<version>/model.onnx`.
    pub fn join(&self, segment: &str) -> Self {
        let join = |base: &str| {
            let base = base.trim_end_matches('/');
            let segment = segment.trim_start_matches('/');
            if base.is_empty() {
                segment.to_owned()
            } else {
                format!("{base}/{segment}")
            }
        };
        match self {
            Self::S3 { bucket, key } => Self::S3 {
                bucket: bucket.clone(),
                key: join(key),
            },
            Self::Gcs { bucket, key } => Self::Gcs {
                bucket: bucket.clone(),
                key: join(key),
            },
            Self::Azure { container, key } => Self::Azure {
                container: container.clone(),
                key: join(key),
            },
            Self::Http(url) => {
                let mut url = url.clone();
                let path = join(url.path());
                url.set_path(&path);
                Self::Http(url)
            }
            Self::File { path } => Self::File {
                path: if path == "/" {
                    format!("/{}", segment.trim_start_matches('/'))
                } else {
                    join(path)
                },
            },
            Self::Pvc { claim, path } => Self::Pvc {
                claim: claim.clone(),
                path: join(path),
            },
        }
    }
}

impl fmt::Display for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Self::Gcs { bucket, key } => write!(f, "gs://{bucket}/{key}"),
            Self::Azure { container, key } => write!(f, "az://{container}/{key}"),
            Self::Http(url) => write!(f, "{url}"),
            Self::File { path } => write!(f, "file://{path}"),
            Self::Pvc { claim, path } => write!(f, "pvc://{claim}/{path}"),
        }
    }
}

impl FromStr for ArtifactUri {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| Error::InvalidUri {
            uri: redact(uri),
            reason: reason.to_owned(),
        };
        // Checked on the raw text: URL parsing would silently resolve `..`.
        check_key(uri.split(['?', '#']).next().unwrap_or_default()).map_err(|r| invalid(&r))?;
        let url = Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials must not be written in a URI; put them in a Secret and name it in secretRef",
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let key = || url.path().trim_start_matches('/').to_owned();
        match url.scheme() {
            "s3" | "gs" => {
                check_bucket(&host).map_err(|r| invalid(&r))?;
                Ok(if url.scheme() == "s3" {
                    Self::S3 {
                        bucket: host,
                        key: key(),
                    }
                } else {
                    Self::Gcs {
                        bucket: host,
                        key: key(),
                    }
                })
            }
            "az" => {
                check_container(&host).map_err(|r| invalid(&r))?;
                Ok(Self::Azure {
                    container: host,
                    key: key(),
                })
            }
            "http" | "https" => {
                if host.is_empty() {
                    return Err(invalid("an http(s) URI needs a host"));
                }
                Ok(Self::Http(url))
            }
            "file" => {
                if !host.is_empty() && host != "localhost" {
                    return Err(invalid(
                        "a file URI names a local absolute path, as file:///data/model.onnx",
                    ));
                }
                let path = url
                    .to_file_path()
                    .ok()
                    .and_then(|p| p.to_str().map(str::to_owned))
                    .ok_or_else(|| invalid("not a valid local path"))?;
                Ok(Self::File { path })
            }
            "pvc" => {
                check_dns_subdomain(&host).map_err(|r| {
                    invalid(&format!("the claim name after pvc:// is not valid: {r}"))
                })?;
                Ok(Self::Pvc {
                    claim: host,
                    path: key(),
                })
            }
            other => Err(invalid(&format!(
                "scheme {other}:// is not supported; use s3, gs, az, http, https, file or pvc"
            ))),
        }
    }
}

/// The URI as it may appear in messages and logs: any user information and
/// query string (where pre-signed URLs carry their signature) removed.
fn redact(uri: &str) -> String {
    let (base, query) = match uri.split_once('?') {
        Some((base, _)) => (base, "?…"),
        None => (uri, ""),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://…@{host}{path}"),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    format!("{base}{query}")
}

/// Paths may not climb out of their prefix.
fn check_key(key: &str) -> Result<(), String> {
    if key.split('/').any(|s| s == "..") {
        return Err("'..' is not allowed in a path".to_owned());
    }
    Ok(())
}

/// S3 and GCS bucket names: 3 to 63 lower-case letters, digits, dots and
/// hyphens, starting and ending with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ok_ends = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(format!(
            "bucket name {bucket:?} must be 3 to 63 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit"
        ))
    }
}

/// Azure container names: 3 to 63 lower-case letters, digits and single
/// hyphens.
fn check_container(container: &str) -> Result<(), String> {
    if (3..=63).contains(&container.len())
        && container
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--")
    {
        Ok(())
    } else {
        Err(format!(
            "container name {container:?} must be 3 to 63 lower-case letters, digits or single '-'"
        ))
    }
}

/// A Kubernetes object name (RFC 1123 subdomain).
pub(crate) fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be lower-case letters, digits, '-' and '.', at most 253 characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ArtifactUri, String> {
        s.parse::<ArtifactUri>().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_supported_scheme() {
        assert_eq!(
            parse("s3://models/fraud/1/model.onnx"),
            Ok(ArtifactUri::S3 {
                bucket: "models".into(),
                key: "fraud/1/model.onnx".into()
            })
        );
        assert_eq!(
            parse("gs://bank-models/x.onnx"),
            Ok(ArtifactUri::Gcs {
                bucket: "bank-models".into(),
                key: "x.onnx".into()
            })
        );
        assert_eq!(
            parse("az://models/a/b"),
            Ok(ArtifactUri::Azure {
                container: "models".into(),
                key: "a/b".into()
            })
        );
        assert_eq!(
            parse("file:///var/lib/models/m.onnx"),
            Ok(ArtifactUri::File {
                path: "/var/lib/models/m.onnx".into()
            })
        );
        assert_eq!(
            parse("pvc://model-store/fraud/m.onnx"),
            Ok(ArtifactUri::Pvc {
                claim: "model-store".into(),
                path: "fraud/m.onnx".into()
            })
        );
        assert!(matches!(
            parse("https://example.com/m.onnx"),
            Ok(ArtifactUri::Http(_))
        ));
    }

    #[test]
    fn rejects_what_cel_cannot_see() {
        let cases = [
            ("s3://Models/x", "bucket name"),
            ("s3://ab/x", "bucket name"),
            ("az://a--b/x", "container name"),
            ("pvc://Bad_Claim/x", "claim name"),
            ("file://server/share/x", "local absolute path"),
            ("s3://models/a/../../etc/passwd", "'..'"),
            ("https://user:secret@example.com/m.onnx", "Secret"),
            ("ftp://example.com/m.onnx", "not supported"),
            ("not a uri", "relative URL"),
        ];
        for (uri, expected) in cases {
            let err = parse(uri).expect_err(uri);
            assert!(err.contains(expected), "{uri}: {err}");
        }
    }

    #[test]
    fn error_messages_do_not_leak_credentials() {
        let err = parse("https://user:hunter2@example.com/m.onnx?sig=abc").expect_err("userinfo");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!err.contains("sig=abc"), "{err}");
    }

    #[test]
    fn join_builds_version_paths() {
        let prefix = parse("s3://models/registry/").expect("valid");
        assert_eq!(
            prefix
                .join("fraud")
                .join("3")
                .join("model.onnx")
                .to_string(),
            "s3://models/registry/fraud/3/model.onnx"
        );
        let root = parse("s3://models").expect("valid");
        assert_eq!(root.join("fraud").to_string(), "s3://models/fraud");
        let file = parse("file:///").expect("valid");
        assert_eq!(file.join("m.onnx").to_string(), "file:///m.onnx");
        let pvc = parse("pvc://store").expect("valid");
        assert_eq!(pvc.join("a/b").to_string(), "pvc://store/a/b");
        assert!(!parse("http://h/x").expect("valid").is_writable());
    }
}
