//! The console's flags.

use std::net::IpAddr;
use std::time::Duration;

use clap::{ArgAction, Parser};

/// `aimass-console` flags; each also reads an `AIMASS_CONSOLE_*` variable.
#[derive(Clone, Debug, Parser)]
#[command(name = "aimass-console", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "AIMASS_CONSOLE_ADDRESS", default_value = "0.0.0.0")]
    pub address: IpAddr,

    /// Port to listen on.
    #[arg(long, env = "AIMASS_CONSOLE_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Namespaces the console shows, comma-separated. Each user sees those
    /// of them where they may list models. Empty: the namespaces the user
    /// may list (which most users may not).
    #[arg(long, env = "AIMASS_CONSOLE_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Mark the session cookie `Secure` (sent over HTTPS only). Browsers
    /// also send Secure cookies to http://localhost, so a port-forward
    /// works; turn it off only for plain HTTP to another host.
    #[arg(long, env = "AIMASS_CONSOLE_SECURE_COOKIES", default_value_t = true, action = ArgAction::Set)]
    pub secure_cookies: bool,

    /// How long a session lasts after sign-in, in seconds (the token's own
    /// expiry ends it sooner: the API server refuses it).
    #[arg(long, env = "AIMASS_CONSOLE_SESSION_SECONDS", default_value_t = 8 * 3600)]
    pub session_seconds: u64,

    /// How often an open stream re-checks that its user may still read
    /// what it streams, in seconds.
    #[arg(long, env = "AIMASS_CONSOLE_RECHECK_SECONDS", default_value_t = 10)]
    pub recheck_seconds: u64,

    /// Logging.
    #[command(flatten)]
    pub logging: aimass_telemetry::Logging,
}

impl Config {
    /// [`Self::session_seconds`] as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_seconds.max(60))
    }

    /// [`Self::recheck_seconds`] as a duration.
    pub fn recheck(&self) -> Duration {
        Duration::from_secs(self.recheck_seconds.clamp(1, 30))
    }
}
