//! Readiness, liveness and startup probes: HTTP GET and TCP from the host to
//! the pod's address, and exec inside the pod's namespaces.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use crate::process::{Launch, terminate};

/// Runs a probe once: `Ok` on success, `Err` with what failed.
pub async fn check(
    probe: &Probe,
    ip: Ipv4Addr,
    container: &Container,
    base: &Launch,
    agent: &Path,
) -> Result<(), String> {
    let timeout = Duration::from_secs(
        probe
            .timeout_seconds
            .unwrap_or(1)
            .max(1)
            .unsigned_abs()
            .into(),
    );
    if let Some(http) = &probe.http_get {
        let port = resolve_port(&http.port, container)?;
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return tokio::time::timeout(timeout, http_get(ip, port, &path, &headers))
            .await
            .map_err(|_| format!("Get \"http://{ip}:{port}{path}\": timeout after {timeout:?}"))?;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, container)?;
        return match tokio::time::timeout(timeout, TcpStream::connect((ip, port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {ip}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {ip}:{port}: timeout")),
        };
    }
    if let Some(exec) = &probe.exec {
        let launch = Launch {
            argv: exec.command.clone().unwrap_or_default(),
            ..base.clone()
        };
        let mut child = launch.spawn(agent).map_err(|e| e.to_string())?;
        return match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("command {:?} exited with {status}", launch.argv)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                terminate(&mut child, Duration::ZERO).await;
                Err(format!("command {:?} timed out", launch.argv))
            }
        };
    }
    Err("probe has no handler the local node agent supports (httpGet, tcpSocket, exec)".into())
}

/// A probe or hook port: a number, or the name of a container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("port {p} is out of range")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("container has no port named {name:?}")),
    }
}

/// GET `path` on `ip:port`; 2xx and 3xx are success, as for the kubelet.
pub async fn http_get(
    ip: Ipv4Addr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let url = format!("http://{ip}:{port}{path}");
    let stream = TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
    tokio::spawn(conn);
    let mut request = hyper::Request::get(path).header(hyper::header::HOST, format!("{ip}:{port}"));
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!(
            "HTTP probe failed with statuscode: {}",
            status.as_u16()
        ))
    }
}
