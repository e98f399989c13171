//! `mua-operator demo` end to end, as a newcomer runs it: the binary, its own control plane, simulator
//! and operator; the exit code and the summary say whether the MUA story held.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The walkthrough on a loaded CI machine (the control plane is already built by then).
const DEMO_DEADLINE: Duration = Duration::from_secs(600);

fn demo() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"));
    cmd.arg("demo").kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_demo_walks_the_whole_story_and_every_check_passes() {
    let output = tokio::time::timeout(DEMO_DEADLINE, demo().output())
        .await
        .expect("the demo finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    let summary = stdout
        .split("━━ Summary")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    assert!(!summary.contains('✘'), "a failed check:\n{summary}");
    for promise in [
        "Azure refused to disable soft delete without elevation",
        "the approval is on the record as bob's",
        "Azure shows soft delete off on prod-vault",
        "the grant on the guard is gone",
        "the request Expired, ended within 2 s of its end time",
        "Azure holds no grant afterwards",
    ] {
        assert!(
            summary.contains(&format!("✔ {promise}")),
            "missing {promise:?}:\n{summary}"
        );
    }
    assert!(summary.contains("checks passed."), "{summary}");
}

#[tokio::test]
async fn ctrl_c_stops_the_demo_and_removes_what_it_started() {
    let mut child = demo().stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Interrupted once the walkthrough is under way (its first step), with everything started.
    let work_dir = tokio::time::timeout(DEMO_DEADLINE, async {
        let mut work_dir = None;
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the demo starts its first step");
            if let Some(dir) = line.trim().strip_prefix("work directory: ") {
                work_dir = Some(std::path::PathBuf::from(dir));
            }
            if line.starts_with("━━ 1.") {
                return work_dir.expect("the work directory is printed before the first step");
            }
        }
    })
    .await
    .expect("the demo starts");
    assert!(work_dir.is_dir(), "{} exists while the demo runs", work_dir.display());
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        while lines.next_line().await.ok().flatten().is_some() {}
        child.wait().await.unwrap()
    })
    .await
    .expect("the demo stops after Ctrl-C");
    assert_eq!(status.code(), Some(130), "the shell's code for an interrupted command");
    assert!(!work_dir.exists(), "{} is removed", work_dir.display());
}
