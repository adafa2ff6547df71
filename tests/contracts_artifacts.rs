//! The committed artifacts (`contracts/artifacts/*.json`, which the Rust bindings are generated
//! from) must be exactly what the pinned solc-js compiles from `contracts/src/`: this runs
//! `node contracts/compile.js --check`, so CI fails when sources and artifacts disagree.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(artifacts: Option<&Path>) -> std::process::Output {
    let status = Command::new("bash")
        .arg(root().join("integration/deps.sh"))
        .arg("solc")
        .status()
        .expect("run deps.sh");
    assert!(status.success(), "integration/deps.sh solc failed");
    let mut cmd = Command::new("node");
    cmd.arg(root().join("contracts/compile.js")).arg("--check");
    if let Some(dir) = artifacts {
        cmd.env("ARTIFACTS_DIR", dir);
    }
    cmd.output().expect("node runs")
}

#[test]
fn committed_artifacts_match_a_fresh_compile_and_drift_is_detected() {
    let out = check(None);
    assert!(
        out.status.success(),
        "contracts/artifacts differ from contracts/src (run `node contracts/compile.js`): {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The check really compares: a copy with one altered bytecode must fail.
    let tmp = std::env::temp_dir().join(format!("smartraiden-artifacts-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for entry in std::fs::read_dir(root().join("contracts/artifacts")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.join(entry.file_name())).unwrap();
    }
    let victim = tmp.join("SecretRegistry.json");
    let text = std::fs::read_to_string(&victim).unwrap();
    std::fs::write(
        &victim,
        text.replacen("\"bytecode\": \"0x6", "\"bytecode\": \"0x7", 1),
    )
    .unwrap();
    let out = check(Some(&tmp));
    std::fs::remove_dir_all(&tmp).ok();
    assert!(
        !out.status.success(),
        "an altered artifact was not detected"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SecretRegistry.json"));
}
