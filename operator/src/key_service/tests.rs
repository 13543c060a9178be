//! Tests of `key_service`.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};

use super::*;

const IMAGE: &str = "aimass/inference-server:0.1.0";
const KEY: &str = "cHVibGlj";

fn server_pod() -> Pod {
    Pod {
        spec: Some(PodSpec {
            service_account_name: Some("scoring-server".into()),
            containers: vec![Container {
                name: "server".into(),
                image: Some(IMAGE.into()),
                env: Some(vec![EnvVar {
                    name: PUBLIC_KEY_ENV.into(),
                    value: Some(KEY.into()),
                    value_from: None,
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn check(pod: &Pod) -> Result<(), String> {
    pod_may_hold_keys(pod, "scoring-server", IMAGE, KEY)
}

#[test]
fn only_a_server_as_the_operator_makes_it_may_hold_the_keys() {
    assert_eq!(check(&server_pod()), Ok(()));
    type Change = fn(&mut PodSpec);
    let cases: [(&str, Change, &str); 11] = [
        (
            "other account",
            |s| s.service_account_name = Some("default".into()),
            "runs as",
        ),
        (
            "sidecar",
            |s| s.containers.push(s.containers[0].clone()),
            "2 containers",
        ),
        (
            "init",
            |s| s.init_containers = Some(vec![Container::default()]),
            "init or ephemeral",
        ),
        (
            "shared pids",
            |s| s.share_process_namespace = Some(true),
            "shares",
        ),
        ("host pid", |s| s.host_pid = Some(true), "shares"),
        (
            "own image",
            |s| s.containers[0].image = Some("evil:1".into()),
            "runs image",
        ),
        (
            "shell",
            |s| s.containers[0].command = Some(vec!["/bin/sh".into()]),
            "overrides",
        ),
        (
            "args",
            |s| s.containers[0].args = Some(vec!["--audit-key-service-public-key=x".into()]),
            "overrides",
        ),
        (
            "envFrom",
            |s| s.containers[0].env_from = Some(vec![Default::default()]),
            "envFrom",
        ),
        (
            "other key",
            |s| s.containers[0].env.as_mut().unwrap()[0].value = Some("ZXZpbA==".into()),
            "not the key service's",
        ),
        (
            "second key",
            |s| {
                s.containers[0].env.as_mut().unwrap().push(EnvVar {
                    name: PUBLIC_KEY_ENV.into(),
                    value: Some("ZXZpbA==".into()),
                    value_from: None,
                })
            },
            "not the key service's",
        ),
    ];
    for (name, change, expected) in cases {
        let mut pod = server_pod();
        change(pod.spec.as_mut().unwrap());
        let refused = check(&pod).expect_err(name);
        assert!(refused.contains(expected), "{name}: {refused}");
    }
    let mut leaving = server_pod();
    leaving.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    assert!(check(&leaving).is_err());
}
