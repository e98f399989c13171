//! The simulator's own certificate authority: generated on first start and written to a file, because
//! Azure SDKs and MSAL only talk to authorities and ARM over https. Clients trust that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA certificate (PEM) clients must trust, and a server configuration for loopback.
pub struct SimTls {
    pub ca_file: PathBuf,
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Loads the CA from `dir` (`ca.crt`, `ca.key`), creating it on first start, and issues a fresh serving
/// certificate for `127.0.0.1`, `::1` and `localhost`.
pub fn load_or_create(dir: &Path) -> anyhow::Result<SimTls> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_file = dir.join("ca.crt");
    let ca_key_file = dir.join("ca.key");
    let (ca_pem, ca_key) = if ca_file.exists() && ca_key_file.exists() {
        let pem = std::fs::read_to_string(&ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
        let key_pem =
            std::fs::read_to_string(&ca_key_file).with_context(|| format!("reading {}", ca_key_file.display()))?;
        (
            pem,
            KeyPair::from_pem(&key_pem).context("parsing the simulator CA key")?,
        )
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key_file, &key.serialize_pem())?;
        std::fs::write(&ca_file, cert.pem()).with_context(|| format!("writing {}", ca_file.display()))?;
        (cert.pem(), key)
    };
    // The CA's parameters are fixed, so the issuer is rebuilt from them rather than parsed from the file.
    let issuer = Issuer::new(ca_params()?, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "::1".into(), "localhost".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "mua-operator ARM simulator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(SimTls {
        ca_file,
        ca_pem,
        server_config: Arc::new(config),
    })
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "mua-operator ARM simulator CA");
    Ok(params)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
