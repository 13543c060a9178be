//! Pod networking: each pod gets a network namespace with a veth pair whose
//! host end joins the cluster bridge, an address from its node's pod range,
//! and a default route through the host.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::process::Command;

use crate::error::{Error, Result};

/// Prefix of the network namespaces the agent creates.
const NETNS_PREFIX: &str = "aimass-";

/// An IPv4 network, e.g. a node's pod range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl std::str::FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("{s:?} is not an IPv4 CIDR"));
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 30 {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - u32::from(len));
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            len,
        })
    }
}

impl Cidr {
    /// Usable host addresses, in order (network and broadcast excluded).
    fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr) + 1;
        let last = u32::from(self.addr) + (1u32 << (32 - u32::from(self.len))) - 2;
        (first..=last).map(Ipv4Addr::from)
    }
}

/// A pod's network, once set up.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Name of its network namespace.
    pub netns: String,
}

impl PodNetwork {
    /// Path of the namespace, for `setns`.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.netns)
    }
}

/// Creates and removes pod networks and hands out addresses.
pub struct Network {
    bridge: String,
    gateway: Ipv4Addr,
    prefix_len: u8,
    used: Mutex<HashMap<String, BTreeSet<Ipv4Addr>>>,
}

impl Network {
    /// A network on `bridge`, where the host is `gateway`.
    pub fn new(bridge: String, gateway: Ipv4Addr, prefix_len: u8) -> Self {
        Self {
            bridge,
            gateway,
            prefix_len,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The host's address on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    fn allocate(&self, node: &str, range: Cidr) -> Result<Ipv4Addr> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let taken = used.entry(node.to_owned()).or_default();
        let ip = range
            .hosts()
            .find(|ip| *ip != self.gateway && !taken.contains(ip))
            .ok_or_else(|| Error::Unsupported {
                reason: "PodRangeExhausted",
                message: format!(
                    "no free address left in {}/{} on {node}",
                    range.addr, range.len
                ),
            })?;
        taken.insert(ip);
        Ok(ip)
    }

    fn release(&self, node: &str, ip: Ipv4Addr) {
        if let Some(taken) = self
            .used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(node)
        {
            taken.remove(&ip);
        }
    }

    /// Creates the namespace and interfaces of a pod on `node`.
    pub async fn setup(&self, node: &str, range: Cidr, pod_uid: &str) -> Result<PodNetwork> {
        let ip = self.allocate(node, range)?;
        let id: String = pod_uid
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(11)
            .collect();
        let netns = format!("{NETNS_PREFIX}{id}");
        let host_if = format!("av{id}");
        let peer_if = format!("ap{id}");
        let address = format!("{ip}/{}", self.prefix_len);
        let gateway = self.gateway.to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &netns],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ],
            vec!["link", "set", &peer_if, "netns", &netns],
            vec!["-n", &netns, "link", "set", &peer_if, "name", "eth0"],
            vec!["-n", &netns, "addr", "add", &address, "dev", "eth0"],
            vec!["-n", &netns, "link", "set", "eth0", "up"],
            vec!["-n", &netns, "link", "set", "lo", "up"],
            vec!["-n", &netns, "route", "add", "default", "via", &gateway],
            vec!["link", "set", &host_if, "master", &self.bridge],
            vec!["link", "set", &host_if, "up"],
        ];
        for step in steps {
            if let Err(e) = ip_cmd(&step).await {
                let _ = ip_cmd(&["netns", "del", &netns]).await;
                let _ = ip_cmd(&["link", "del", &host_if]).await;
                self.release(node, ip);
                return Err(e);
            }
        }
        Ok(PodNetwork { ip, netns })
    }

    /// Removes a pod's namespace (and with it the veth pair) and frees its
    /// address.
    pub async fn teardown(&self, node: &str, net: &PodNetwork) {
        if let Err(e) = ip_cmd(&["netns", "del", &net.netns]).await {
            tracing::warn!(netns = %net.netns, error = %e, "could not remove network namespace");
        }
        self.release(node, net.ip);
    }

    /// Removes namespaces left behind by an earlier run of the agent.
    pub async fn remove_stale(&self) {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output().await else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(NETNS_PREFIX) {
                let _ = ip_cmd(&["netns", "del", name]).await;
            }
        }
    }
}

async fn ip_cmd(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(Error::io("running ip (iproute2)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_normalise_and_list_hosts() {
        let c: Cidr = "10.244.1.7/24".parse().unwrap();
        assert_eq!(c.addr, Ipv4Addr::new(10, 244, 1, 0));
        let hosts: Vec<_> = c.hosts().collect();
        assert_eq!(hosts.len(), 254);
        assert_eq!(hosts[0], Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(hosts[253], Ipv4Addr::new(10, 244, 1, 254));
        assert!("10.0.0.0/31".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn allocation_skips_the_gateway_and_reuses_released_addresses() {
        let net = Network::new("br".into(), Ipv4Addr::new(10, 244, 0, 1), 16);
        let range: Cidr = "10.244.0.0/24".parse().unwrap();
        let a = net.allocate("n0", range).unwrap();
        let b = net.allocate("n0", range).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 244, 0, 3));
        net.release("n0", a);
        assert_eq!(net.allocate("n0", range).unwrap(), a);
        // Another node's range is independent.
        let other: Cidr = "10.244.1.0/24".parse().unwrap();
        assert_eq!(
            net.allocate("n1", other).unwrap(),
            Ipv4Addr::new(10, 244, 1, 1)
        );
    }
}
