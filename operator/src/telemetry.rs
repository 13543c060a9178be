//! Logging set-up: `tracing` with a `RUST_LOG`-style filter, plain or JSON.

use tracing_subscriber::EnvFilter;

use crate::Error;
use crate::config::LogFormat;

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: &str) -> Result<(), Error> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| Error::Config(format!("invalid log filter {filter:?}: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let installed = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| Error::Config(format!("cannot install the log subscriber: {e}")))
}
