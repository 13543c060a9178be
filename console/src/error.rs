//! The console's one error type; [`Error::status`] is the only place an
//! error becomes an HTTP status.

use hyper::StatusCode;

/// Why a page, a stream or a change could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session, an expired one, or a token the API server no longer takes.
    #[error("sign in first")]
    Unauthenticated,
    /// The signed-in user may not do this; the message says what.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing of that name the user may see.
    #[error("{0} not found")]
    NotFound(String),
    /// The request itself is wrong (a form field, a path).
    #[error("{0}")]
    BadRequest(String),
    /// The console has as many sessions or streams as it keeps.
    #[error("{0}")]
    Busy(String),
    /// The API server answered an error the user cannot act on.
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[source] kube::Error),
    /// The API server did not answer in time.
    #[error("the Kubernetes API did not answer in time")]
    Timeout,
    /// A template failed to render.
    #[error("cannot render the page: {0}")]
    Render(#[from] minijinja::Error),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Kube(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable PascalCase name, for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "Unauthenticated",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "NotFound",
            Self::BadRequest(_) => "BadRequest",
            Self::Busy(_) => "Busy",
            Self::Kube(_) => "KubeApi",
            Self::Timeout => "Timeout",
            Self::Render(_) => "Render",
        }
    }
}

impl From<kube::Error> for Error {
    /// The API server's refusals keep their meaning (and its message, e.g.
    /// an admission policy's): 401 signs the user out, 403 is theirs to
    /// read, 404 is not found, 400/409/422 are about what they sent.
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(status) => match status.code {
                401 => Self::Unauthenticated,
                403 => Self::Forbidden(status.message.clone()),
                404 => Self::NotFound(status.message.clone()),
                400 | 409 | 422 => Self::BadRequest(status.message.clone()),
                _ => Self::Kube(e),
            },
            _ => Self::Kube(e),
        }
    }
}
