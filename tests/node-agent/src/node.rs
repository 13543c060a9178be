//! Nodes: registration with capacity, labels and the kubelet endpoint, status
//! heartbeats and Lease renewal, so the node lifecycle controller keeps them
//! Ready.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::warn;

use crate::error::{Error, Result};
use crate::network::Cidr;

/// How often status and Lease are renewed.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// The Lease duration the node lifecycle controller judges by.
const LEASE_SECONDS: i32 = 40;

/// One node this agent stands in for.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// Node name.
    pub name: String,
    /// Index among the agent's nodes (used for the zone label).
    pub index: usize,
    /// The node's address (the host on the bridge).
    pub address: Ipv4Addr,
    /// Port of its kubelet endpoint.
    pub kubelet_port: u16,
    /// CPU capacity.
    pub cpu: String,
    /// Memory capacity.
    pub memory: String,
    /// Most pods.
    pub max_pods: u32,
}

impl NodeIdentity {
    fn status(&self) -> serde_json::Value {
        let now = Time(Timestamp::now());
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let resources: BTreeMap<&str, Quantity> = [
            ("cpu", Quantity(self.cpu.clone())),
            ("memory", Quantity(self.memory.clone())),
            ("pods", Quantity(self.max_pods.to_string())),
            ("ephemeral-storage", Quantity("100Gi".into())),
        ]
        .into();
        json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("Ready", "True", "KubeletReady", "aimass node agent is posting ready status"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.address.to_string()},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": format!("aimass-{}", self.name),
                "systemUUID": format!("aimass-{}", self.name),
                "bootID": format!("aimass-{}-{}", self.name, std::process::id()),
                "kernelVersion": nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
                "osImage": "aimass local node",
                "containerRuntimeVersion": format!("aimass-node-agent://{}", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": "v1.35.4",
                "kubeProxyVersion": "v1.35.4",
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
        })
    }
}

/// Creates the Node (or adopts an existing one) and posts its status.
pub async fn register(client: &kube::Client, node: &NodeIdentity) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", node.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        (
            "topology.kubernetes.io/zone",
            &format!("zone-{}", node.index),
        ),
        ("aimass.io/local-node", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let object = Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(Error::kube(format!("registering node {}", node.name))(e)),
    }
    post_status(&api, node).await
}

async fn post_status(api: &Api<Node>, node: &NodeIdentity) -> Result<()> {
    api.patch_status(
        &node.name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": node.status()})),
    )
    .await
    .map_err(Error::kube(format!("posting status of node {}", node.name)))?;
    Ok(())
}

/// Renews status and Lease forever.
pub async fn heartbeat(client: kube::Client, node: NodeIdentity) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        if let Err(e) = post_status(&nodes, &node).await {
            warn!(node = %node.name, error = %e, "node heartbeat failed");
        }
        if let Err(e) = renew_lease(&nodes, &leases, &node.name).await {
            warn!(node = %node.name, error = %e, "lease renewal failed");
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

async fn renew_lease(nodes: &Api<Node>, leases: &Api<Lease>, name: &str) -> Result<()> {
    let uid = nodes
        .get(name)
        .await
        .map_err(Error::kube(format!("reading node {name}")))?
        .metadata
        .uid
        .unwrap_or_default();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("kube-node-lease".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.to_owned(),
                uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    };
    leases
        .patch(
            name,
            &PatchParams::apply("aimass-node-agent").force(),
            &Patch::Apply(&lease),
        )
        .await
        .map_err(Error::kube(format!("renewing lease of {name}")))?;
    Ok(())
}

/// Waits until the controller manager has given the node its pod range.
pub async fn pod_cidr(client: &kube::Client, name: &str) -> Result<Cidr> {
    let api: Api<Node> = Api::all(client.clone());
    for _ in 0..120 {
        let node = api
            .get(name)
            .await
            .map_err(Error::kube(format!("reading node {name}")))?;
        if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr) {
            return cidr.parse();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Config(format!(
        "node {name} got no podCIDR in 60 s; is kube-controller-manager running with --allocate-node-cidrs?"
    )))
}
