//! `aimass-audit verify` on a trail the server's writer made: intact, then
//! with one record changed.

use std::process::Command;

use aimass_audit::{Actor, AuditLog, Record};

#[test]
fn verify_reports_an_intact_trail_and_then_the_first_changed_record() {
    let dir = std::env::temp_dir().join(format!("aimass-audit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, key) = (dir.join("audit.jsonl"), dir.join("key"));
    let _ = std::fs::remove_file(&log);
    std::fs::write(&key, b"a key file of at least thirty-two bytes").unwrap();
    let writer = AuditLog::open(&log, std::fs::read(&key).unwrap()).unwrap();
    let mut last = None;
    for i in 0..5 {
        let record = Record {
            actor: Actor {
                user: format!("caller-{i}"),
                method: "ApiKey".into(),
                ..Actor::default()
            },
            status: 200,
            ..Record::default()
        };
        last = Some(writer.append(record).unwrap());
    }
    let last = last.unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_aimass-audit"))
            .args(["verify", "--log"])
            .arg(&log)
            .arg("--key-file")
            .arg(&key)
            .args([
                "--expect-sequence",
                &last.sequence.to_string(),
                "--expect-mac",
                &last.mac,
            ])
            .output()
            .unwrap()
    };
    let intact = run();
    assert!(intact.status.success(), "{intact:?}");
    assert!(String::from_utf8_lossy(&intact.stdout).starts_with("intact: 5 records"));

    let text = std::fs::read_to_string(&log)
        .unwrap()
        .replacen("caller-2", "caller-9", 1);
    std::fs::write(&log, text).unwrap();
    let broken = run();
    assert_eq!(broken.status.code(), Some(1));
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(
        out.contains("record 3 (sequence 3)") && out.contains("changed"),
        "{out}"
    );
}
