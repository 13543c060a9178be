//! Sessions: the user's token kept server-side, found by a random id in an
//! HttpOnly, SameSite=Strict cookie, with a CSRF token of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The session cookie's name.
pub const COOKIE: &str = "aimass_session";

/// At most this many sessions live at once.
const CAPACITY: usize = 10_000;

/// A signed-in user.
#[derive(Debug)]
pub struct Session {
    /// The user name the TokenReview answered.
    pub user: String,
    /// Their uid, if any.
    pub uid: Option<String>,
    /// Their groups.
    pub groups: Vec<String>,
    /// Their token: every read and write is made with it. Never rendered.
    pub token: String,
    /// The token forms must carry back.
    pub csrf: String,
    expires: Instant,
}

/// The live sessions, bounded.
pub struct Sessions {
    inner: Mutex<HashMap<String, Arc<Session>>>,
    ttl: Duration,
}

/// Who a token belongs to, as the TokenReview says.
#[derive(Clone, Debug)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// Uid, if any.
    pub uid: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
}

impl Sessions {
    /// Sessions lasting `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Starts a session for `who` with `token`; its id, a fresh random one
    /// (never one the browser brought).
    pub fn create(&self, who: Identity, token: String) -> Result<(String, Arc<Session>), Error> {
        let id = random_token()?;
        let session = Arc::new(Session {
            user: who.user,
            uid: who.uid,
            groups: who.groups,
            token,
            csrf: random_token()?,
            expires: Instant::now() + self.ttl,
        });
        let mut sessions = self.lock();
        if sessions.len() >= CAPACITY {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
        }
        if sessions.len() >= CAPACITY {
            return Err(Error::Busy(
                "the console has as many sessions as it keeps; try again later".into(),
            ));
        }
        sessions.insert(id.clone(), Arc::clone(&session));
        Ok((id, session))
    }

    /// The live session `id`, if any; an expired one is dropped.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(s) if s.expires > Instant::now() => Some(Arc::clone(s)),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 32 random bytes, hex.
pub fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Busy(format!("no randomness for a session: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value starting session `id` for `max_age`.
pub fn set_cookie(id: &str, secure: bool, max_age: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value ending the session.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", secure, Duration::ZERO)
}

/// Whether `given` is the session's CSRF token (in constant time).
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    session.csrf.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            uid: None,
            groups: vec![],
        }
    }

    #[test]
    fn a_session_is_found_by_its_random_id_until_it_expires_or_ends() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (id, session) = sessions.create(alice(), "t".into()).expect("created");
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert_eq!(
            sessions.get(&id).map(|s| s.user.clone()).as_deref(),
            Some("alice")
        );
        assert!(sessions.get(&"0".repeat(64)).is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());

        let expired = Sessions::new(Duration::ZERO);
        let (id, _) = expired.create(alice(), "t".into()).expect("created");
        assert!(expired.get(&id).is_none());
    }

    #[test]
    fn only_a_well_formed_session_cookie_is_read() {
        let id = "ab".repeat(32);
        assert_eq!(
            cookie_value(&format!("x=1; {COOKIE}={id}")),
            Some(id.as_str())
        );
        assert_eq!(cookie_value(&format!("{COOKIE}=../../etc")), None);
        assert_eq!(cookie_value(&format!("{COOKIE}={id}x")), None);
        assert_eq!(cookie_value("other=1"), None);
        let cookie = set_cookie(&id, true, Duration::from_secs(5));
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=5",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
    }

    #[test]
    fn the_csrf_token_must_match_exactly() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (_, session) = sessions.create(alice(), "t".into()).expect("created");
        assert!(csrf_matches(&session, &session.csrf.clone()));
        assert!(!csrf_matches(&session, ""));
        assert!(!csrf_matches(&session, &session.csrf[..63]));
    }
}
