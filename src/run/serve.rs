//! The process's HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (200 while the process runs)
//! and `/readyz` (200 once `run` has constructed the Azure credentials, reached the API server and
//! prepared each side's Lease: a standby is Ready too, and `mua_leader` tells it apart).
//!
//! Secured (`--metrics-secure`), all three are served over TLS and `/metrics` answers only callers the API
//! server authenticates and authorizes (`metrics_auth`); the probes stay open, as the kubelet asks them
//! without credentials.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::metrics_auth::{Decision, MetricsAuth};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds before anything slow starts, so that a taken port fails the start at once; logs the address
/// (with port 0, the one picked).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding --metrics-bind-address {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
    Ok(listener)
}

/// Secured metrics: the TLS configuration and who may scrape.
pub struct Secured {
    pub tls: Arc<rustls::ServerConfig>,
    pub auth: MetricsAuth,
}

impl Secured {
    /// TLS with `cert_dir`'s `tls.crt` and `tls.key` (e.g. a cert-manager Secret), or a certificate made
    /// at start and signed by itself (as controller-runtime does; scrapers then skip verification).
    pub fn new(cert_dir: Option<&Path>, client: kube::Client) -> anyhow::Result<Self> {
        let (cert_pem, key_pem) = match cert_dir {
            Some(dir) => {
                let read = |name: &str| {
                    std::fs::read_to_string(dir.join(name))
                        .with_context(|| format!("reading {} (--metrics-cert-dir)", dir.join(name).display()))
                };
                (read("tls.crt")?, read("tls.key")?)
            }
            None => {
                let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
                    .context("making the metrics endpoint's certificate")?;
                (cert.cert.pem(), cert.signing_key.serialize_pem())
            }
        };
        let certs = pem_certs(&cert_pem)?;
        let key =
            <rustls::pki_types::PrivateKeyDer as rustls::pki_types::pem::PemObject>::from_pem_slice(key_pem.as_bytes())
                .context("reading the metrics endpoint's private key")?;
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the metrics endpoint's certificate and key")?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(tls),
            auth: MetricsAuth::new(client),
        })
    }
}

fn pem_certs(pem: &str) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the metrics endpoint's certificate")?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the metrics endpoint's certificate file holds no certificate"
    );
    Ok(certs)
}

#[derive(Clone)]
struct Endpoints {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    secured: Option<Arc<Secured>>,
}

/// Serves until the process ends.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    secured: Option<Arc<Secured>>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Endpoints {
            registry,
            ready,
            secured: secured.clone(),
        });
    match secured {
        None => {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "the metrics and health endpoints stopped");
            }
        }
        Some(secured) => serve_tls(listener, secured.tls.clone(), app).await,
    }
}

async fn serve_tls(listener: TcpListener, tls: Arc<rustls::ServerConfig>, app: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                tracing::warn!(%err, "accepting a connection failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http1_only()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn metrics(State(endpoints): State<Endpoints>, headers: HeaderMap) -> Response {
    if let Some(secured) = &endpoints.secured {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match secured.auth.decide(authorization).await {
            Decision::Allowed => {}
            Decision::Unauthenticated => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "a Kubernetes bearer token is required\n",
                )
                    .into_response();
            }
            Decision::Forbidden => {
                return (
                    StatusCode::FORBIDDEN,
                    "not allowed to get /metrics (RBAC: nonResourceURLs)\n",
                )
                    .into_response();
            }
            Decision::Unavailable => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot review the token now; try again\n",
                )
                    .into_response();
            }
        }
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &endpoints.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    if endpoints.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
