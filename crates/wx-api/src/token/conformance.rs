//! The behaviour suite every `TokenStore` must pass (memory, Redis, SQLite, PostgreSQL). It lives in the
//! library, not in a test, so the `store` crate can run the same checks against its SQL stores.
//!
//! Each check returns `Err(description)` on the first failed expectation instead of panicking, so it can
//! be called from any crate's tests (which unwrap the result). Every check builds its own keys from the
//! caller's `tenant_prefix` plus a random nonce, so suites can run in parallel against a shared Redis or
//! PostgreSQL without seeing each other's rows.

use std::time::Duration;

use futures::future::join_all;
use secrecy::SecretString;

use super::store::{CachedToken, TokenKey, TokenKind, TokenStore};

/// How a store decides that a lease has expired, which decides how the suite tests expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseClock {
    /// The store compares the lease against the `now_ms` the caller passes (SQL, in-memory). Expiry is
    /// tested by passing a later `now_ms`, with no waiting.
    Caller,
    /// The store expires leases by its own real clock (Redis `PX`). Expiry is tested with a short TTL,
    /// a real wait just past it, and a later `now_ms` as well, so it also passes for `Caller` stores.
    Store,
}

/// The lease TTL used when the suite has to wait for real expiry: short so the suite stays quick, long
/// enough that a slow CI machine does not see it lapse between two calls that expect it live.
const REAL_LEASE_TTL: Duration = Duration::from_millis(200);
/// Extra real time waited past `REAL_LEASE_TTL` before expecting the lease gone.
const REAL_LEASE_MARGIN: Duration = Duration::from_millis(150);
/// A lease long enough that it never expires during a check.
const LONG_TTL: Duration = Duration::from_secs(60);
/// Generous bound for "returns within the timeout": the point is that it returns, not how fast.
const WAIT_SLACK: Duration = Duration::from_secs(5);
/// How many holders race for one lease in the concurrency check.
const RACERS: usize = 20;

/// Every check, with the conservative `LeaseClock::Store` expiry test that works for any store.
pub async fn run_all(store: &dyn TokenStore, tenant_prefix: &str) -> Result<(), String> {
    run_all_with(store, tenant_prefix, LeaseClock::Store).await
}

/// Every check, testing lease expiry the way `clock` says the store works.
pub async fn run_all_with(
    store: &dyn TokenStore,
    tenant_prefix: &str,
    clock: LeaseClock,
) -> Result<(), String> {
    get_missing_is_none(store, tenant_prefix).await?;
    put_then_get_round_trips(store, tenant_prefix).await?;
    put_replaces(store, tenant_prefix).await?;
    invalidate_current_removes(store, tenant_prefix).await?;
    invalidate_stale_keeps_fresher(store, tenant_prefix).await?;
    invalidate_missing_is_false(store, tenant_prefix).await?;
    keys_are_isolated(store, tenant_prefix).await?;
    lease_is_exclusive(store, tenant_prefix).await?;
    lease_same_holder_retakes(store, tenant_prefix, clock).await?;
    lease_release(store, tenant_prefix).await?;
    lease_expires(store, tenant_prefix, clock).await?;
    lease_is_per_key(store, tenant_prefix).await?;
    wait_for_update_returns(store, tenant_prefix).await?;
    lease_race_has_one_winner(store, tenant_prefix).await?;
    Ok(())
}

/// A key unique to this call of a check.
fn key(prefix: &str, check: &str) -> TokenKey {
    TokenKey {
        tenant: format!("{prefix}-{check}-{:016x}", rand::random::<u64>()),
        owner: "ww0000000000000001".to_owned(),
        secret_id: "sec0001".to_owned(),
        kind: TokenKind::WecomAccessToken,
    }
}

fn token(value: &str, expires_at_ms: i64) -> CachedToken {
    CachedToken {
        value: SecretString::from(value.to_owned()),
        expires_at_ms,
    }
}

/// A plausible "now": the suite does not depend on it, but stores that mix in real time behave sanely.
fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Turns a store error into the check's failure message. The store error never holds a token value.
fn failed<E: std::fmt::Display>(check: &str, op: &str) -> impl FnOnce(E) -> String {
    let (check, op) = (check.to_owned(), op.to_owned());
    move |e| format!("{check}: {op} returned an error: {e}")
}

fn expect(check: &str, ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{check}: {}", what()))
    }
}

/// Compares a cached token without printing its value if it is wrong (values are test strings here,
/// but the habit is the point).
fn expect_token(
    check: &str,
    got: Option<CachedToken>,
    value: &str,
    expires_at_ms: i64,
) -> Result<(), String> {
    match got {
        None => Err(format!("{check}: expected a cached token, got none")),
        Some(t) if t.value() != value => Err(format!(
            "{check}: cached value differs from the one stored last"
        )),
        Some(t) if t.expires_at_ms != expires_at_ms => Err(format!(
            "{check}: expiry {} differs from the stored {expires_at_ms}",
            t.expires_at_ms
        )),
        Some(_) => Ok(()),
    }
}

/// `get` on a key never stored returns `None`.
pub async fn get_missing_is_none(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "get_missing_is_none";
    let got = store.get(&key(prefix, C)).await.map_err(failed(C, "get"))?;
    expect(C, got.is_none(), || {
        "a never-stored key returned a token".to_owned()
    })
}

/// `put` then `get` returns the same value and expiry, for ordinary and awkward values.
pub async fn put_then_get_round_trips(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "put_then_get_round_trips";
    let long = "A".repeat(512);
    let values = [
        ("plain", "tok_abc-DEF_123", 1_700_000_000_000_i64),
        ("long", long.as_str(), 4_102_444_800_000),
        ("unicode and quotes", "票据'\";--\u{1F600}", 1),
        ("large expiry", "v", i64::MAX / 2),
    ];
    for (what, value, expires) in values {
        let k = key(prefix, C);
        store
            .put(&k, &token(value, expires))
            .await
            .map_err(failed(C, "put"))?;
        let got = store.get(&k).await.map_err(failed(C, "get"))?;
        expect_token(&format!("{C} ({what})"), got, value, expires)?;
    }
    Ok(())
}

/// A second `put` replaces value and expiry.
pub async fn put_replaces(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "put_replaces";
    let k = key(prefix, C);
    store
        .put(&k, &token("first", 1_000))
        .await
        .map_err(failed(C, "put"))?;
    store
        .put(&k, &token("second", 2_000))
        .await
        .map_err(failed(C, "put"))?;
    let got = store.get(&k).await.map_err(failed(C, "get"))?;
    expect_token(C, got, "second", 2_000)
}

/// `invalidate` with the current value removes it and says so; a second call finds nothing.
pub async fn invalidate_current_removes(
    store: &dyn TokenStore,
    prefix: &str,
) -> Result<(), String> {
    const C: &str = "invalidate_current_removes";
    let k = key(prefix, C);
    store
        .put(&k, &token("current", 5_000))
        .await
        .map_err(failed(C, "put"))?;
    let removed = store
        .invalidate(&k, "current")
        .await
        .map_err(failed(C, "invalidate"))?;
    expect(C, removed, || {
        "invalidate with the current value returned false".to_owned()
    })?;
    let got = store.get(&k).await.map_err(failed(C, "get"))?;
    expect(C, got.is_none(), || {
        "the token is still cached after invalidate".to_owned()
    })?;
    let again = store
        .invalidate(&k, "current")
        .await
        .map_err(failed(C, "invalidate"))?;
    expect(C, !again, || "a second invalidate returned true".to_owned())
}

/// `invalidate` with a stale value (another replica already stored a fresher one) removes nothing.
pub async fn invalidate_stale_keeps_fresher(
    store: &dyn TokenStore,
    prefix: &str,
) -> Result<(), String> {
    const C: &str = "invalidate_stale_keeps_fresher";
    let k = key(prefix, C);
    store
        .put(&k, &token("stale", 1_000))
        .await
        .map_err(failed(C, "put"))?;
    store
        .put(&k, &token("fresh", 2_000))
        .await
        .map_err(failed(C, "put"))?;
    let removed = store
        .invalidate(&k, "stale")
        .await
        .map_err(failed(C, "invalidate"))?;
    expect(C, !removed, || {
        "invalidate with a stale value returned true".to_owned()
    })?;
    let got = store.get(&k).await.map_err(failed(C, "get"))?;
    expect_token(C, got, "fresh", 2_000)?;
    // A prefix of the value is not the value.
    let removed = store
        .invalidate(&k, "fres")
        .await
        .map_err(failed(C, "invalidate"))?;
    expect(C, !removed, || {
        "invalidate with a prefix of the value returned true".to_owned()
    })
}

/// `invalidate` on a key never stored returns false.
pub async fn invalidate_missing_is_false(
    store: &dyn TokenStore,
    prefix: &str,
) -> Result<(), String> {
    const C: &str = "invalidate_missing_is_false";
    let removed = store
        .invalidate(&key(prefix, C), "x")
        .await
        .map_err(failed(C, "invalidate"))?;
    expect(C, !removed, || {
        "invalidate on a missing key returned true".to_owned()
    })
}

/// Keys that differ only in tenant, owner, secret_id or kind never see each other's token or lease.
pub async fn keys_are_isolated(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "keys_are_isolated";
    let base = key(prefix, C);
    let variants = [
        ("base", base.clone()),
        (
            "tenant",
            TokenKey {
                tenant: format!("{}-other", base.tenant),
                ..base.clone()
            },
        ),
        (
            "owner",
            TokenKey {
                owner: "ww0000000000000002".to_owned(),
                ..base.clone()
            },
        ),
        (
            "secret_id",
            TokenKey {
                secret_id: "sec0002".to_owned(),
                ..base.clone()
            },
        ),
        (
            "kind",
            TokenKey {
                kind: TokenKind::WecomJsapiTicket,
                ..base.clone()
            },
        ),
    ];
    for (i, (name, k)) in variants.iter().enumerate() {
        let expires = 10_000 + i64::try_from(i).unwrap_or(0);
        store
            .put(k, &token(&format!("value-{name}"), expires))
            .await
            .map_err(failed(C, "put"))?;
    }
    for (i, (name, k)) in variants.iter().enumerate() {
        let expires = 10_000 + i64::try_from(i).unwrap_or(0);
        let got = store.get(k).await.map_err(failed(C, "get"))?;
        expect_token(
            &format!("{C} (differs in {name})"),
            got,
            &format!("value-{name}"),
            expires,
        )?;
    }
    // Invalidating the base with its own value must leave every variant alone.
    let removed = store
        .invalidate(&base, "value-base")
        .await
        .map_err(failed(C, "invalidate"))?;
    expect(C, removed, || {
        "invalidate of the base key returned false".to_owned()
    })?;
    for (name, k) in variants.iter().skip(1) {
        let got = store.get(k).await.map_err(failed(C, "get"))?;
        expect(C, got.is_some(), || {
            format!("invalidating the base removed the key differing in {name}")
        })?;
    }
    // A lease on the base does not block a lease on any variant.
    let now = now_ms();
    let took = store
        .try_lease(&base, "holder-a", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, took, || {
        "the first lease on the base key was refused".to_owned()
    })?;
    for (name, k) in variants.iter().skip(1) {
        let took = store
            .try_lease(k, "holder-b", now, LONG_TTL)
            .await
            .map_err(failed(C, "try_lease"))?;
        expect(C, took, || {
            format!("a lease on the base blocked the key differing in {name}")
        })?;
    }
    Ok(())
}

/// The first holder gets the lease; another holder does not while it is live.
pub async fn lease_is_exclusive(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "lease_is_exclusive";
    let k = key(prefix, C);
    let now = now_ms();
    let a = store
        .try_lease(&k, "holder-a", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, a, || {
        "the first holder did not get a free lease".to_owned()
    })?;
    let b = store
        .try_lease(&k, "holder-b", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !b, || "a second holder got a live lease".to_owned())?;
    // Still live just before its expiry by the caller's clock.
    let later = now + ms(LONG_TTL) - 1;
    let b = store
        .try_lease(&k, "holder-b", later, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !b, || {
        "a second holder got the lease 1 ms before it expired".to_owned()
    })
}

/// The contract: the holder of a live lease may take it again (it is renewed, not refused), and it
/// still excludes everyone else. With `LeaseClock::Caller` the renewal is also checked to extend the
/// expiry from the new `now_ms`.
pub async fn lease_same_holder_retakes(
    store: &dyn TokenStore,
    prefix: &str,
    clock: LeaseClock,
) -> Result<(), String> {
    const C: &str = "lease_same_holder_retakes";
    let k = key(prefix, C);
    let now = now_ms();
    let ttl = LONG_TTL;
    let a = store
        .try_lease(&k, "holder-a", now, ttl)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, a, || {
        "the first holder did not get a free lease".to_owned()
    })?;
    let renew_at = now + ms(ttl) / 2;
    let again = store
        .try_lease(&k, "holder-a", renew_at, ttl)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, again, || {
        "the holder could not re-take its own live lease".to_owned()
    })?;
    let b = store
        .try_lease(&k, "holder-b", renew_at, ttl)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !b, || {
        "another holder got the lease after it was renewed".to_owned()
    })?;
    if clock == LeaseClock::Caller {
        // Past the first expiry but before the renewed one: still held.
        let between = now + ms(ttl) + 1;
        let b = store
            .try_lease(&k, "holder-b", between, ttl)
            .await
            .map_err(failed(C, "try_lease"))?;
        expect(C, !b, || {
            "re-taking did not extend the lease from the new now_ms".to_owned()
        })?;
        let after = renew_at + ms(ttl) + 1;
        let b = store
            .try_lease(&k, "holder-b", after, ttl)
            .await
            .map_err(failed(C, "try_lease"))?;
        expect(C, b, || {
            "the renewed lease did not expire at its new expiry".to_owned()
        })?;
    }
    Ok(())
}

/// Release by someone else changes nothing; release by the holder frees the lease at once.
pub async fn lease_release(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "lease_release";
    let k = key(prefix, C);
    let now = now_ms();
    // Releasing a lease nobody holds is not an error.
    store
        .release_lease(&k, "holder-a")
        .await
        .map_err(failed(C, "release_lease"))?;
    let a = store
        .try_lease(&k, "holder-a", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, a, || {
        "the first holder did not get a free lease".to_owned()
    })?;
    store
        .release_lease(&k, "holder-b")
        .await
        .map_err(failed(C, "release_lease"))?;
    let b = store
        .try_lease(&k, "holder-b", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !b, || {
        "a release by a non-holder freed the lease".to_owned()
    })?;
    store
        .release_lease(&k, "holder-a")
        .await
        .map_err(failed(C, "release_lease"))?;
    let b = store
        .try_lease(&k, "holder-b", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, b, || {
        "after the holder released, a second holder did not get the lease".to_owned()
    })?;
    let a = store
        .try_lease(&k, "holder-a", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !a, || {
        "the old holder re-took a lease now held by another".to_owned()
    })
}

/// A lease not renewed or released expires after its TTL and another holder gets it.
pub async fn lease_expires(
    store: &dyn TokenStore,
    prefix: &str,
    clock: LeaseClock,
) -> Result<(), String> {
    const C: &str = "lease_expires";
    let k = key(prefix, C);
    let now = now_ms();
    let ttl = match clock {
        LeaseClock::Caller => LONG_TTL,
        LeaseClock::Store => REAL_LEASE_TTL,
    };
    let a = store
        .try_lease(&k, "holder-a", now, ttl)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, a, || {
        "the first holder did not get a free lease".to_owned()
    })?;
    if clock == LeaseClock::Store {
        // Redis-style stores expire by their own clock; only real time passing makes that happen.
        tokio::time::sleep(REAL_LEASE_TTL + REAL_LEASE_MARGIN).await;
    }
    let after = now + ms(ttl) + ms(REAL_LEASE_MARGIN);
    let b = store
        .try_lease(&k, "holder-b", after, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, b, || {
        "a second holder did not get the lease after its TTL passed".to_owned()
    })?;
    let a = store
        .try_lease(&k, "holder-a", after, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !a, || {
        "the expired holder took back a lease now held by another".to_owned()
    })
}

/// The lease and the cached token are independent: storing or invalidating a token does not free or
/// take the lease.
pub async fn lease_is_per_key(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "lease_is_per_key";
    let k = key(prefix, C);
    let now = now_ms();
    let a = store
        .try_lease(&k, "holder-a", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, a, || {
        "the first holder did not get a free lease".to_owned()
    })?;
    store
        .put(&k, &token("v1", 1_000))
        .await
        .map_err(failed(C, "put"))?;
    store
        .invalidate(&k, "v1")
        .await
        .map_err(failed(C, "invalidate"))?;
    let b = store
        .try_lease(&k, "holder-b", now, LONG_TTL)
        .await
        .map_err(failed(C, "try_lease"))?;
    expect(C, !b, || {
        "put/invalidate of the token freed its lease".to_owned()
    })
}

/// `wait_for_update` returns (with no update coming) once the timeout has passed, and a zero timeout
/// returns at once.
pub async fn wait_for_update_returns(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "wait_for_update_returns";
    let k = key(prefix, C);
    for timeout in [Duration::ZERO, Duration::from_millis(100)] {
        match tokio::time::timeout(timeout + WAIT_SLACK, store.wait_for_update(&k, timeout)).await {
            Ok(result) => result.map_err(failed(C, "wait_for_update"))?,
            Err(_) => {
                return Err(format!(
                    "{C}: wait_for_update({timeout:?}) had not returned {WAIT_SLACK:?} after its timeout"
                ));
            }
        }
    }
    Ok(())
}

/// Many holders asking for a free lease at the same moment: exactly one wins.
pub async fn lease_race_has_one_winner(store: &dyn TokenStore, prefix: &str) -> Result<(), String> {
    const C: &str = "lease_race_has_one_winner";
    let k = key(prefix, C);
    let now = now_ms();
    let holders: Vec<String> = (0..RACERS).map(|i| format!("racer-{i}")).collect();
    let results = join_all(
        holders
            .iter()
            .map(|h| store.try_lease(&k, h, now, LONG_TTL)),
    )
    .await;
    let mut winners = 0;
    for r in results {
        if r.map_err(failed(C, "try_lease"))? {
            winners += 1;
        }
    }
    expect(C, winners == 1, || {
        format!("{winners} of {RACERS} concurrent holders got the lease")
    })
}
