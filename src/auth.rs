//! Authentication: argon2id password hashes, HS256 JSON Web Tokens, and the bearer-token
//! extractors ([`AuthUser`], [`AdminUser`]) handlers take to require a signed-in user.
//!
//! Tokens carry `sub` (the user id), `role`, `iat` and `exp`, signed with
//! `auth.jwt_secret`. Only HS256 is accepted: `jsonwebtoken` runs here with a crypto
//! provider of ours that can do nothing else, and decoding asks for HS256 explicitly, so a
//! token with `alg: none`, another HMAC size or an asymmetric algorithm is refused before
//! any signature is looked at. Every request also reloads the user: a deleted, deactivated
//! or demoted account loses its access at once, whatever its token still says.

use std::sync::{Once, OnceLock};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use facture_core::db::models::User;
use futures_util::future::LocalBoxFuture;
use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;
use crate::startup::AppState;

/// The shortest password accepted (characters).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted (characters): hashing cost must stay bounded.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => facture_core::users::role::USER,
            Role::Admin => facture_core::users::role::ADMIN,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            facture_core::users::role::USER => Some(Role::User),
            facture_core::users::role::ADMIN => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

// ---------------------------------------------------------------------------------------
// Password hashing

/// Checks the password rules (length, counted in characters).
pub fn check_password_strength(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("the password must have at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The argon2id PHC string (`$argon2id$v=19$...`) of `password`, with a fresh random salt.
/// CPU-bound: async code calls [`hash_password_blocking`].
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string (parameters are read from the string).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed))
        .is_ok()
}

/// A hash of a password nobody knows: checking a password against it costs what checking
/// a real one costs, so an unknown email answers in the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password(&facture_core::random_hex(32)).unwrap_or_else(|_| {
            // Unreachable with a 16-byte salt; a fixed well-formed string keeps the cost.
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$\
             AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_owned()
        })
    })
}

/// [`hash_password`] off the async workers.
pub async fn hash_password_blocking(password: String) -> Result<String, ApiError> {
    actix_web::rt::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// [`verify_password`] off the async workers; `None` checks against the decoy (and fails).
pub async fn verify_password_blocking(password: String, phc: Option<String>) -> bool {
    actix_web::rt::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => {
            let _ = verify_password(&password, decoy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Tokens

type HmacSha256 = Hmac<Sha256>;

struct Hs256(HmacSha256);

impl Hs256 {
    fn keyed(secret: &[u8]) -> jsonwebtoken::errors::Result<Self> {
        HmacSha256::new_from_slice(secret)
            .map(Hs256)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison.
        mac.verify_slice(sig).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

/// The only cryptography `jsonwebtoken` can use in this process: HS256.
static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: |alg, key| {
        if *alg != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Ok(Box::new(Hs256::keyed(key.try_get_hmac_secret()?)?))
    },
    verifier_factory: |alg, key| {
        if *alg != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Ok(Box::new(Hs256::keyed(key.try_get_hmac_secret()?)?))
    },
    jwk_utils: JwkUtils::new_unimplemented(),
};

fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only if a provider was installed before, which then stays in charge; the
        // validation below still admits HS256 alone.
        let _ = HS256_ONLY.install_default();
    });
}

/// The configured signing secret (always set after start-up: `Settings::ensure_secrets`).
pub fn jwt_secret(state: &AppState) -> Result<&str, ApiError> {
    state
        .settings
        .auth
        .jwt_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::internal("auth.jwt_secret is not configured"))
}

/// A signed token for `user_id`, valid `lifetime_secs` from `now` (Unix seconds).
pub fn issue_token(
    secret: &str,
    user_id: &str,
    role: Role,
    now: i64,
    lifetime_secs: u64,
) -> Result<(String, Claims), ApiError> {
    install_provider();
    let claims = Claims {
        sub: user_id.to_owned(),
        role: role.as_str().to_owned(),
        iat: now,
        exp: now.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX)),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(ApiError::internal)?;
    Ok((token, claims))
}

/// The claims of a valid token: HS256 only, signed with `secret`, `exp` and `sub`
/// present and `exp` in the future (no leeway).
pub fn decode_token(secret: &str, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
    install_provider();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_exp = true;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )?;
    Ok(data.claims)
}

// ---------------------------------------------------------------------------------------
// Extractors

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// A signed-in, active user (any role), from `Authorization: Bearer <token>`.
/// Missing, malformed, expired or forged tokens answer 401 `unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: String,
    pub role: Role,
    pub email: String,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthorized("authentication required: send Authorization: Bearer <token>")
        })?;
    let value = header
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim().to_owned())
}

async fn authenticate(state: web::Data<AppState>, token: String) -> Result<AuthUser, ApiError> {
    let secret = jwt_secret(&state)?;
    let claims = decode_token(secret, &token).map_err(|e| {
        tracing::debug!(error = %e, "bearer token refused");
        unauthorized("the token is invalid or expired")
    })?;
    let user: Option<User> = facture_core::orders::find_user(&state.db, &claims.sub).await?;
    let user = user
        .filter(|u| u.is_active)
        .ok_or_else(|| unauthorized("the token's account does not exist or is inactive"))?;
    let role = Role::parse(&user.role)
        .ok_or_else(|| unauthorized("the token's account has an unknown role"))?;
    Ok(AuthUser {
        id: user.id,
        role,
        email: user.email,
    })
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            authenticate(state, token?).await
        })
    }
}

/// A signed-in ADMIN. Other users answer 403 `forbidden`; no or a bad token, 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            if !user.is_admin() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this endpoint requires the ADMIN role",
                ));
            }
            Ok(AdminUser(user))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "unit-test-secret-0123456789";

    #[test]
    fn a_token_round_trips_and_expires() {
        let now = chrono::Utc::now().timestamp();
        let (token, claims) = issue_token(SECRET, "u1", Role::Admin, now, 60).unwrap();
        assert_eq!(decode_token(SECRET, &token).unwrap(), claims);
        assert!(decode_token("another-secret", &token).is_err());
        let (old, _) = issue_token(SECRET, "u1", Role::Admin, now - 120, 60).unwrap();
        assert!(decode_token(SECRET, &old).is_err(), "expired");
    }

    #[test]
    fn unsigned_and_other_algorithms_are_refused() {
        use base64_url as b64;
        let now = chrono::Utc::now().timestamp();
        let claims = format!(
            r#"{{"sub":"u1","role":"ADMIN","iat":{now},"exp":{}}}"#,
            now + 60
        );
        for alg in ["none", "HS512", "RS256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let token = format!("{}.{}.", b64::encode(&header), b64::encode(&claims));
            assert!(decode_token(SECRET, &token).is_err(), "{alg}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("wrong horse battery", &phc));
        assert!(!verify_password("anything", "not a phc string"));
        assert!(check_password_strength("short").is_err());
        assert!(check_password_strength("twelve chars").is_ok());
    }

    /// Unpadded base64url, as JWTs use it.
    mod base64_url {
        pub fn encode(s: &str) -> String {
            const ALPHABET: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [
                    chunk[0],
                    chunk.get(1).copied().unwrap_or(0),
                    chunk.get(2).copied().unwrap_or(0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                let chars = chunk.len() + 1;
                for i in 0..chars {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
