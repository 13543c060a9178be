//! The restricted Pod Security Standard, as every pod the operator creates
//! wears it: non-root, no privilege escalation, no capabilities, the
//! runtime's default seccomp profile.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The uid of the distroless `nonroot` user the aimass images run as.
pub const NONROOT_UID: i64 = 65532;

/// A restricted pod: non-root (as `run_as_user` when given, else as the
/// image's user, which must not be root) under RuntimeDefault seccomp.
pub fn pod(run_as_user: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// A restricted container; `read_only_root` also makes its root file system
/// read-only (the inference server writes nothing; trainers write scratch
/// files, so theirs stays writable).
pub fn container(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: read_only_root.then_some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}
