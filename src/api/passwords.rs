//! Admin password hashing (argon2id). Hashing is deliberately slow, so it
//! runs on the blocking pool, never on a runtime worker.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use std::sync::LazyLock;

use argon2::Argon2;

use super::problem::{ApiError, ApiResult};

/// A real argon2id hash of a random password nobody knows, verified
/// against when the username is unknown so that both cases cost the same.
pub static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let secret: [u8; 16] = rand::random();
    hash_blocking(&hex::encode(secret)).unwrap_or_default()
});

pub fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub async fn verify(password: String, hash: String) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check: {e}")))
}

/// The dummy hash, computed on the blocking pool the first time.
pub async fn dummy_hash() -> ApiResult<String> {
    tokio::task::spawn_blocking(|| DUMMY_HASH.clone())
        .await
        .map_err(|e| ApiError::Internal(format!("password check: {e}")))
}
