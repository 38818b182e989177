//! Per-tenant API keys: `Authorization: Bearer wxb_...`, checked by sha256 against the tenant's
//! `api_key_hashes` in constant time. Keys are never stored or logged, only their hashes.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wxbridge_config::{ApiKeyHash, TenantConfig};

/// The prefix every wxbridge API key carries, so a leaked key is recognisable (secret scanners, logs).
pub const API_KEY_PREFIX: &str = "wxb_";

/// A new random API key (`wxb_` + 43 base62-ish characters) and its hash for the config file.
pub fn generate_api_key() -> (String, ApiKeyHash) {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let key = format!("{API_KEY_PREFIX}{body}");
    let hash = hash_api_key(&key);
    (key, hash)
}

pub fn hash_api_key(key: &str) -> ApiKeyHash {
    ApiKeyHash::from_bytes(Sha256::digest(key.as_bytes()).into())
}

/// Whether the request carries one of `tenant`'s API keys. Every configured hash is compared (no early
/// exit), each in constant time.
pub fn is_authorised(headers: &HeaderMap, tenant: &TenantConfig) -> bool {
    let Some(key) = bearer(headers) else {
        return false;
    };
    if !key.starts_with(API_KEY_PREFIX) {
        return false;
    }
    let presented = hash_api_key(key);
    let mut ok = subtle::Choice::from(0);
    for h in &tenant.api_key_hashes {
        ok |= presented.as_bytes().ct_eq(h.as_bytes());
    }
    ok.into()
}

/// The tenant whose API key the request carries, for the routes whose path names no tenant
/// (`/api/v1/messages`): every tenant's hashes are compared, each in constant time, and the key must
/// belong to exactly one tenant. 401 otherwise. Records the tenant on the request's span.
pub(crate) fn tenant_of_api_key<'a>(
    state: &'a crate::AppState,
    headers: &HeaderMap,
) -> Result<&'a std::sync::Arc<domain::Tenant>, crate::WebError> {
    let mut matching = state
        .tenants
        .iter()
        .filter(|t| is_authorised(headers, &t.config));
    match (matching.next(), matching.next()) {
        (Some(tenant), None) => {
            tracing::Span::current().record("tenant.key", tenant.key());
            Ok(tenant)
        }
        (Some(_), Some(_)) => {
            tracing::warn!("an API key is configured for several tenants; refused");
            Err(crate::WebError::Unauthorized)
        }
        (None, _) => Err(crate::WebError::Unauthorized),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The tenant named in the path, if the request carries one of its API keys or comes from an admin UI
/// operator whose session covers it (cookie + CSRF rule, see `admin_auth`): 404 for an unknown tenant,
/// 401 without either, 403 for an operator of another tenant or a failed CSRF check. Records the tenant
/// on the request's span.
pub(crate) fn authorised_tenant<'a>(
    state: &'a crate::AppState,
    tenant_key: &str,
    headers: &HeaderMap,
) -> Result<&'a std::sync::Arc<domain::Tenant>, crate::WebError> {
    let tenant = state
        .tenants
        .get(tenant_key)
        .ok_or_else(|| crate::WebError::TenantNotFound(tenant_key.to_owned()))?;
    tracing::Span::current().record("tenant.key", tenant.key());
    if !is_authorised(headers, &tenant.config) {
        // No API key of this tenant: an admin UI operator whose scope covers it (admin_auth).
        crate::admin_auth::operator_for_tenant(tenant.key())?;
    }
    Ok(tenant)
}
