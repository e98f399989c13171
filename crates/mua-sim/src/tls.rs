//! The simulator's own certificate authority: generated on first start and written to a file, because
//! Azure SDKs and MSAL only talk to authorities and ARM over https. Clients trust that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer,
    KeyPair, NameConstraints,
};
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

/// The CA may only vouch for loopback (`localhost`, 127.0.0.0/8, ::1): people trust it system-wide for the
/// Azure CLI, and without name constraints its key could sign for any host.
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let mut loopback_v6 = [0u8; 16];
    loopback_v6[15] = 1;
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(loopback_v6, [0xff; 16])),
        ],
        excluded_subtrees: Vec::new(),
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    /// A serving certificate for `name`, signed with the CA's key from `dir`.
    fn signed_for(dir: &Path, name: &str) -> CertificateDer<'static> {
        let key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap()).unwrap();
        let issuer = Issuer::new(ca_params().unwrap(), key);
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap();
        CertificateDer::from(cert.der().to_vec())
    }

    fn verifies(dir: &Path, ca_pem: &str, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(ca_pem) {
            roots.add(cert).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let server = ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(&signed_for(dir, name), &[], &server, &[], UnixTime::now())
            .is_ok()
    }

    fn rustls_pemfile_certs(pem: &str) -> Vec<CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_ca_vouches_for_loopback_only() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path()).unwrap();
        assert!(verifies(dir.path(), &tls.ca_pem, "localhost"));
        assert!(verifies(dir.path(), &tls.ca_pem, "127.0.0.1"));
        assert!(
            !verifies(dir.path(), &tls.ca_pem, "management.azure.com"),
            "a key that leaks must not sign for real hosts"
        );
    }

    #[test]
    fn the_ca_key_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
