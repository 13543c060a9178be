//! The operator's Prometheus registry: one per process, each subsystem
//! registering its own metrics into it.

use prometheus::{IntGaugeVec, Opts, Registry};

/// The process-wide registry and the operator's own metrics.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
}

impl Metrics {
    /// Creates the registry with build information and process metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "aimass_operator_build_info",
                "Version of the running operator; always 1.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self { registry })
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_process_metrics() {
        let text = Metrics::new().expect("registry").render().expect("renders");
        assert!(
            text.contains(&format!(
                "aimass_operator_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
