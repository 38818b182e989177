//! From a tenant's configuration to a sync run: the `SyncOptions` its `[..wecom.directory]` settings ask
//! for (fetch concurrency, call budget, strategy, removal guard), and which credential reads the directory.
//! The CLI (`wxbridge sync`, `demo`) and the server's sync route both start runs through these, so a run
//! behaves the same whoever starts it.

use std::sync::Arc;

use wxbridge_config::{DirectoryConfig, DirectorySource, DirectoryStrategy, TenantConfig};

use super::plan::PlanOptions;
use super::sync::SyncOptions;
use super::upstream::{FetchOptions, FetchStrategy, StrategyChoice};
use crate::tenants::{Credential, CredentialKind, Tenant};

/// The run options of `tenant`'s directory settings (defaults when it has no WeCom corp). The caller sets
/// `dry_run`, `plan.override_guard` and `hub` per run.
pub fn sync_options(tenant: &TenantConfig) -> SyncOptions {
    let defaults = DirectoryConfig::default();
    let d = tenant.wecom.as_ref().map_or(&defaults, |w| &w.directory);
    SyncOptions {
        plan: PlanOptions {
            max_remove_ratio: d.max_removal_share,
            override_guard: false,
        },
        fetch: FetchOptions {
            concurrency: d.concurrency.max(1),
            calls_per_minute: d.calls_per_minute,
            strategy: strategy_choice(d.strategy),
            ..FetchOptions::default()
        },
        webhook: tenant.webhook.clone(),
        ..SyncOptions::default()
    }
}

/// The fetch strategy a configured `strategy` stands for.
pub fn strategy_choice(s: DirectoryStrategy) -> StrategyChoice {
    match s {
        DirectoryStrategy::Auto => StrategyChoice::Auto,
        DirectoryStrategy::List => StrategyChoice::Force(FetchStrategy::UserList),
        DirectoryStrategy::ListId => StrategyChoice::Force(FetchStrategy::ListIdThenGet),
    }
}

/// The credential that reads `tenant`'s directory: the one `[..wecom.directory] app` names, or by default
/// the contacts-sync secret when configured, else the first self-built app by name. `None` when the tenant
/// has no WeCom corp (or no usable credential); use [`no_directory_app_reason`] to say why.
pub fn directory_credential(tenant: &Tenant) -> Option<&Arc<Credential>> {
    let wecom = tenant.config.wecom.as_ref()?;
    match &wecom.directory.source {
        DirectorySource::Contacts => tenant.credential(CredentialKind::WecomContacts, "contacts"),
        DirectorySource::App(name) => tenant.credential(CredentialKind::WecomApp, name),
        DirectorySource::Auto => tenant
            .credential(CredentialKind::WecomContacts, "contacts")
            .or_else(|| {
                tenant
                    .credentials
                    .iter()
                    .find(|c| c.kind == CredentialKind::WecomApp)
            }),
    }
    .filter(|c| c.wecom().is_some())
}

/// Why [`directory_credential`] found nothing, phrased for an operator.
pub fn no_directory_app_reason(tenant: &Tenant) -> String {
    match &tenant.config.wecom {
        None => format!(
            "tenant `{}` has no WeCom corp, so there is no directory to sync; add [tenants.{}.wecom]",
            tenant.key(),
            tenant.key()
        ),
        Some(_) => format!(
            "tenant `{}` has no credential that can read the directory; add [tenants.{}.wecom.contacts] \
             (the 通讯录同步 secret) or a self-built app under [tenants.{}.wecom.apps]",
            tenant.key(),
            tenant.key(),
            tenant.key()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wx_api::clock::SystemClock;
    use wx_api::token::MemoryTokenStore;
    use wxbridge_config::{Config, Sources};

    use super::*;
    use crate::Tenants;

    /// A config built from `WXBRIDGE_*` variables only: tenant `t` with apps `b-app` and `a-app`, plus
    /// whatever `extra` adds.
    fn config(extra: &[(&str, &str)]) -> Config {
        let mut env = vec![
            ("WXBRIDGE_TOKENS__STORE", "memory"),
            ("WXBRIDGE_TENANTS__T__WECOM__CORPID", "ww0123456789abcdef"),
            (
                "WXBRIDGE_TENANTS__T__WECOM__APPS__B-APP__AGENTID",
                "1000002",
            ),
            (
                "WXBRIDGE_TENANTS__T__WECOM__APPS__B-APP__SECRET",
                "b-secret",
            ),
            (
                "WXBRIDGE_TENANTS__T__WECOM__APPS__A-APP__AGENTID",
                "1000003",
            ),
            (
                "WXBRIDGE_TENANTS__T__WECOM__APPS__A-APP__SECRET",
                "a-secret",
            ),
        ];
        env.extend_from_slice(extra);
        wxbridge_config::load(&Sources::default().with_env(env))
            .unwrap()
            .config
    }

    fn credential_name(c: &Config) -> Option<String> {
        let tokens =
            Tenants::token_manager(c, Arc::new(MemoryTokenStore::new()), Arc::new(SystemClock));
        let tenants = Tenants::build(c, tokens).unwrap();
        directory_credential(tenants.get("t").unwrap()).map(|c| c.name.clone())
    }

    #[test]
    fn defaults_match_the_run_defaults() {
        let o = sync_options(config(&[]).tenant("t").unwrap());
        let d = SyncOptions::default();
        assert_eq!(o.plan, d.plan);
        assert_eq!(o.fetch.concurrency, d.fetch.concurrency);
        assert_eq!(o.fetch.calls_per_minute, d.fetch.calls_per_minute);
        assert_eq!(o.fetch.strategy, StrategyChoice::Auto);
        assert!(!o.dry_run);
    }

    #[test]
    fn directory_settings_reach_the_options() {
        let c = config(&[
            (
                "WXBRIDGE_TENANTS__T__WECOM__DIRECTORY__CALLS_PER_MINUTE",
                "0",
            ),
            ("WXBRIDGE_TENANTS__T__WECOM__DIRECTORY__CONCURRENCY", "3"),
            (
                "WXBRIDGE_TENANTS__T__WECOM__DIRECTORY__MAX_REMOVAL_SHARE",
                "0.25",
            ),
            ("WXBRIDGE_TENANTS__T__WECOM__DIRECTORY__STRATEGY", "list_id"),
        ]);
        let o = sync_options(c.tenant("t").unwrap());
        assert_eq!(o.fetch.calls_per_minute, 0);
        assert_eq!(o.fetch.concurrency, 3);
        assert!((o.plan.max_remove_ratio - 0.25).abs() < 1e-12);
        assert!(!o.plan.override_guard);
        assert_eq!(
            o.fetch.strategy,
            StrategyChoice::Force(FetchStrategy::ListIdThenGet)
        );
        assert_eq!(
            strategy_choice(DirectoryStrategy::List),
            StrategyChoice::Force(FetchStrategy::UserList)
        );
    }

    #[test]
    fn the_credential_is_the_configured_one_else_contacts_else_the_first_app() {
        assert_eq!(credential_name(&config(&[])).as_deref(), Some("a-app"));
        let with_contacts = [("WXBRIDGE_TENANTS__T__WECOM__CONTACTS__SECRET", "c-secret")];
        assert_eq!(
            credential_name(&config(&with_contacts)).as_deref(),
            Some("contacts")
        );
        let mut named = with_contacts.to_vec();
        named.push(("WXBRIDGE_TENANTS__T__WECOM__DIRECTORY__APP", "b-app"));
        assert_eq!(credential_name(&config(&named)).as_deref(), Some("b-app"));
    }
}
