//! The simulator as a server: its state across a restart, the `sim` command, idle connections.

use super::*;

#[tokio::test]
async fn state_survives_a_restart_with_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    {
        let ts = TestSim::start_in(dir.path(), |o| o.state_file = Some(state.clone())).await;
        ts.create_guard("kept").await;
    }
    assert!(state.exists());
    let ts = TestSim::start_in(dir.path(), |o| {
        o.state_file = Some(state.clone());
        o.seed = None;
    })
    .await;
    let reply = ts
        .call(&ts.security_side(), Method::GET, &guard("kept"), None)
        .await
        .expect(200, "the guard is still there");
    assert_eq!(reply.body["location"], "westeurope");
}

#[tokio::test]
async fn the_sim_command_serves_the_example_seed_until_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.yaml");
    std::fs::write(
        &faults,
        "- pathContains: backupWidgets\n  errorRate: 1.0\n  errorStatus: 503\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .args(["sim", "--listen", "127.0.0.1:0", "--seed"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-seed.yaml"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--faults")
        .arg(&faults)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a banner line")
        .unwrap()
        .unwrap();
    let banner: Value = serde_json::from_str(&banner).unwrap();
    let ca = std::fs::read_to_string(banner["caFile"].as_str().unwrap()).unwrap();
    let cloud = mua_operator::azure::credentials::AzureCloud {
        arm_url: banner["armUrl"].as_str().unwrap().into(),
        authority_host: banner["authorityHost"].as_str().unwrap().into(),
        ca_pem: Some(ca),
        arm_audience: mua_operator::azure::credentials::PUBLIC_ARM_AUDIENCE.into(),
    };
    let http = cloud.http_client().unwrap();
    let credential = cloud.client_secret(&http, CONTOSO, BACKUP_APP, BACKUP_SECRET).unwrap();
    let token = credential
        .get_token(&[mua_operator::azure::credentials::ARM_SCOPE], None)
        .await
        .unwrap();
    let reply = http
        .get(format!(
            "{}{}?api-version=2026-11-01",
            cloud.arm_url,
            vault("prod-vault")
        ))
        .bearer_auth(token.token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let rules: Value = http
        .get(format!("{}/_sim/faults", cloud.arm_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rules[0]["pathContains"], "backupWidgets",
        "fault rules from --faults: {rules}"
    );

    let pid = child.id().unwrap() as i32;
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Connects to the simulator; `tls`: completes the handshake (trusting its CA) before going idle.
async fn idle_connection_is_closed(tls: bool) {
    use tokio::io::AsyncReadExt;
    let ts = TestSim::start_with(|o| o.idle_timeout = Duration::from_secs(1)).await;
    let addr = ts.sim.arm_url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = if tls {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ts.sim.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = connector.connect(name, tcp).await.expect("the handshake succeeds");
        tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf)).await
    } else {
        let mut tcp = tcp;
        tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf)).await
    };
    // Closed by the server: end of stream (or a reset), long before the 15 s this waits.
    match closed {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the server sent {n} bytes to an idle connection"),
        Err(_) => panic!("an idle connection was still open after 15 s (idle timeout 1 s)"),
    }
}

#[tokio::test]
async fn a_connection_that_never_starts_tls_is_closed_after_the_idle_timeout() {
    idle_connection_is_closed(false).await;
}

#[tokio::test]
async fn a_connection_idle_after_the_handshake_is_closed_after_the_idle_timeout() {
    idle_connection_is_closed(true).await;
}
