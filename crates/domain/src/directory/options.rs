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
