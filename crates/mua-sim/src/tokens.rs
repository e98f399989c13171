//! The simulator's tokens: the claims of an access token as ARM reads them, of a refresh token, and the
//! keys that sign and verify both (kept beside the CA, so tokens survive a restart).

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The resource ARM tokens are issued for, and the audiences ARM accepts.
pub const ARM_RESOURCE: &str = "https://management.azure.com";
pub const ARM_AUDIENCES: [&str; 4] = [
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];

/// The claims of an access token, as ARM reads them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    pub idtyp: String,
    pub ver: String,
}

/// Signs and verifies the simulator's tokens, with keys kept beside the CA so tokens survive a restart:
/// access and ID tokens with one RSA key (the one the JWKS publishes), refresh tokens with an EC key of
/// their own, so that neither kind of token can pass for the other.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    kid: String,
    refresh_encoding: EncodingKey,
    refresh_decoding: DecodingKey,
}

impl TokenIssuer {
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let pem = load_or_create_key(&dir.join("token-signing.key"), || {
            let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
            Ok(key.serialize_pem())
        })?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        let kid = format!(
            "sim-{}",
            &uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, pem.as_bytes())
                .simple()
                .to_string()[..12]
        );
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk)?;
        // rcgen's default key pair is ECDSA P-256.
        let refresh_pem = load_or_create_key(&dir.join("refresh-token-signing.key"), || {
            Ok(rcgen::KeyPair::generate()?.serialize_pem())
        })?;
        let refresh_encoding = EncodingKey::from_ec_pem(refresh_pem.as_bytes())?;
        let refresh_decoding = DecodingKey::from_jwk(&Jwk::from_encoding_key(&refresh_encoding, Algorithm::ES256)?)?;
        Ok(Self {
            encoding,
            decoding,
            jwk,
            kid,
            refresh_encoding,
            refresh_decoding,
        })
    }

    /// Signs an access token or an ID token.
    #[allow(
        clippy::expect_used,
        reason = "signing claims with our own key, made for the algorithm, cannot fail"
    )]
    pub fn issue(&self, claims: &impl Serialize) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing with our own key")
    }

    /// Verifies an access token's signature and expiry (wall clock); the caller checks audience and tenant.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|data| data.claims)
    }

    #[allow(
        clippy::expect_used,
        reason = "signing claims with our own key, made for the algorithm, cannot fail"
    )]
    pub fn issue_refresh(&self, claims: &RefreshClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.refresh_encoding)
            .expect("signing with our own key")
    }

    /// Verifies a refresh token's signature and expiry (wall clock); the caller checks whom it binds.
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<RefreshClaims>(token, &self.refresh_decoding, &validation).map(|data| data.claims)
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }
}

/// A PEM key from `path`, generated and written there first if the file does not exist yet.
fn load_or_create_key(path: &Path, generate: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<String> {
    if path.exists() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
    }
    let pem = generate()?;
    std::fs::write(path, &pem).with_context(|| format!("writing {}", path.display()))?;
    Ok(pem)
}

/// A refresh token binds a user of one tenant to the client it was issued to. It is signed (with a key
/// of its own, see `TokenIssuer`), so it cannot be forged or rebound.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub tid: String,
    pub oid: String,
    /// The client the token was issued to.
    pub azp: String,
    pub iat: i64,
    pub exp: i64,
}
