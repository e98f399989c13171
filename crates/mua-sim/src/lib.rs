//! The local ARM simulator: a faithful local Azure for MUA, the way Azurite is for Storage. It speaks
//! ARM's wire format and enforces what Azure enforces: tokens from its own Entra-style endpoint, RBAC with
//! scope inheritance, Reader to link a vault to a guard, the linked authorization check for critical
//! operations, cross-tenant auxiliary tokens, PIM with approval and expiry, ETags, long-running
//! operations, throttling and injected faults. `mua-operator sim` serves it; tests start it in-process.

pub mod admin;
pub mod arm;
pub mod authz;
pub mod clock;
pub mod device_code;
pub mod device_codes;
pub mod directory;
pub mod error;
pub mod faults;
pub mod graph;
pub mod identity;
pub mod operations;
pub mod seed;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod tokens;
pub mod user_tokens;
pub mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tower::ServiceExt;

pub use faults::FaultRule;
pub use seed::Seed;
pub use state::SimState;
pub use throttle::Limits;

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The CA, its key and the token-signing keys live here (created on first start).
    pub data_dir: PathBuf,
    pub seed: Option<PathBuf>,
    /// Save the world here after every change, and load it from here on start (it wins over the seed).
    pub state_file: Option<PathBuf>,
    pub throttling: bool,
    pub limits: Limits,
    pub faults: Vec<FaultRule>,
    /// How long a connection may sit without a complete request (TLS handshake or request headers)
    /// before it is closed, so idle clients cannot hold connections (and file descriptors) forever.
    pub idle_timeout: Duration,
    /// How long device code clients (`az login --use-device-code`) wait between polls of the token
    /// endpoint; MSAL waits this long once more after the code is approved.
    pub device_code_interval: Duration,
    /// Stand in for another cloud's ARM: accept tokens for this audience only (and name it in the
    /// metadata), as a sovereign cloud's ARM does, e.g. `https://management.usgovcloudapi.net` for Azure
    /// Government. Default: the public cloud's audiences.
    pub arm_audience: Option<String>,
}

impl SimOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            seed: None,
            state_file: None,
            throttling: true,
            limits: Limits::default(),
            faults: Vec::new(),
            // Azure's load balancers drop idle connections after 4 minutes.
            idle_timeout: Duration::from_secs(240),
            // Entra's interval.
            device_code_interval: Duration::from_secs(5),
            arm_audience: None,
        }
    }
}

/// A running simulator. Dropping it stops accepting connections.
pub struct Simulator {
    /// ARM's base URL (`https://127.0.0.1:PORT`).
    pub arm_url: String,
    /// The Entra authority host (the same listener).
    pub authority_host: String,
    /// The CA certificate clients must trust.
    pub ca_file: PathBuf,
    pub ca_pem: String,
    pub state: Arc<SimState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Simulator {
    pub async fn start(options: SimOptions) -> anyhow::Result<Simulator> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = tls::load_or_create(&options.data_dir)?;
        let tokens = tokens::TokenIssuer::load_or_create(&options.data_dir)?;
        let world = match (&options.state_file, &options.seed) {
            (Some(state), _) if state.exists() => {
                let bytes = std::fs::read(state).with_context(|| format!("reading {}", state.display()))?;
                serde_json::from_slice(&bytes).with_context(|| format!("parsing the state file {}", state.display()))?
            }
            (_, Some(seed)) => Seed::load(seed)?.into_world()?,
            (_, None) => world::World::default(),
        };
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("listening on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let base_url = format!("https://{addr}");
        let clock = Arc::new(clock::SimClock::default());
        let throttle = throttle::Throttle::new(options.limits, clock.clone(), options.throttling);
        let mut state = SimState::new(
            world,
            clock,
            tokens,
            base_url.clone(),
            throttle,
            options.state_file.clone(),
            options.device_code_interval,
        );
        if let Some(audience) = &options.arm_audience {
            let audience = audience.trim_end_matches('/');
            state.arm_audiences = vec![audience.to_string(), format!("{audience}/")];
        }
        let state = Arc::new(state);
        faults::validate(&options.faults).map_err(anyhow::Error::msg)?;
        state.faults.set(options.faults.clone());
        let app = router(state.clone());
        let server = tokio::spawn(serve(
            listener,
            tls.server_config.clone(),
            app,
            state.clone(),
            options.idle_timeout,
        ));
        Ok(Simulator {
            arm_url: base_url.clone(),
            authority_host: base_url,
            ca_file: tls.ca_file,
            ca_pem: tls.ca_pem,
            state,
            server,
        })
    }

    /// Moves the simulated clock forward (PIM expiries, unlock windows, throttling refills).
    pub fn advance(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// The one-line JSON that `mua-operator sim` prints on start.
    pub fn banner(&self) -> serde_json::Value {
        json!({"armUrl": self.arm_url, "authorityHost": self.authority_host, "caFile": self.ca_file})
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(device_code::device_authorization),
        )
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(identity::keys))
        .route("/common/discovery/instance", get(identity::instance_discovery))
        .route("/v1.0/servicePrincipals", get(graph::service_principals))
        .route("/v1.0/users", get(graph::users))
        .route("/v1.0/directoryObjects/getByIds", post(graph::get_by_ids))
        .merge(admin::routes())
        .fallback(arm::handle)
        .with_state(state)
}

/// Accepts TLS connections and serves HTTP/1.1 and HTTP/2, applying injected faults before routing.
async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    state: Arc<SimState>,
    idle_timeout: Duration,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    // One builder per protocol, chosen by ALPN: detecting the protocol from the first bytes would wait
    // for them without a timeout.
    let builder = |http2: bool| {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(idle_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(idle_timeout)
            .keep_alive_timeout(Duration::from_secs(20));
        Arc::new(if http2 {
            builder.http2_only()
        } else {
            builder.http1_only()
        })
    };
    let (http1, http2) = (builder(false), builder(true));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            // Out of file descriptors (or another transient failure): wait rather than spin on it.
            Err(err) => {
                tracing::warn!(%err, "accepting a connection failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app, state) = (acceptor.clone(), app.clone(), state.clone());
        let (http1, http2) = (http1.clone(), http2.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(idle_timeout, acceptor.accept(tcp)).await else {
                return;
            };
            let builder = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => http2,
                _ => http1,
            };
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let (app, state) = (app.clone(), state.clone());
                async move { handle_with_faults(app, state, request.map(Body::new)).await }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle_with_faults(
    app: Router,
    state: Arc<SimState>,
    request: Request<Body>,
) -> Result<axum::response::Response, std::io::Error> {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sim/") {
        return Ok(app.oneshot(request).await.into_response());
    }
    let (latency, fault) = state.faults.decide(request.method().as_str(), &path, state.clock.now());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut response = match fault {
        None => return Ok(app.oneshot(request).await.into_response()),
        // An error from the service makes hyper close the connection without an answer.
        Some(faults::Fault::Drop) => return Err(std::io::Error::other("injected fault: connection dropped")),
        Some(faults::Fault::Error(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut err = error::ArmError::new(
                status,
                "InternalServerError",
                "Injected fault: the server encountered an internal error.",
            );
            if status == StatusCode::TOO_MANY_REQUESTS {
                err = throttle::throttled("injected", "any", throttle::OperationKind::Read, Duration::from_secs(1));
            }
            err.into_response()
        }
        Some(faults::Fault::Throttle(wait)) => {
            throttle::throttled("injected", "any", throttle::OperationKind::Read, wait).into_response()
        }
    };
    arm::stamp_request_ids(request.headers(), &mut response);
    Ok(response)
}
