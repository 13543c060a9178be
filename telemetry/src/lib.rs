//! Logging shared by the aimass binaries (the operator, the inference
//! server): the same two flags, `tracing` with a `RUST_LOG`-style filter,
//! plain lines or JSON.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The logging flags, flattened into each binary's configuration.
#[derive(Clone, Debug, clap::Args)]
pub struct Logging {
    /// Log format.
    #[arg(long, env = "AIMASS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax, e.g. `info,aimass_operator=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

impl Logging {
    /// Installs the global subscriber; the error says what is wrong.
    pub fn init(&self) -> Result<(), String> {
        let filter = &self.log_filter;
        let filter = EnvFilter::try_new(filter)
            .map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
        let installed = match self.log_format {
            LogFormat::Plain => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        installed.map_err(|e| format!("cannot install the log subscriber: {e}"))
    }
}
