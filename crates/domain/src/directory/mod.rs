//! Directory sync of a WeCom corp into local roles and users: `upstream` fetches the corp's directory
//! through the typed client (strategy, scope, rate budget, item errors), `local` is the plain snapshot of
//! what the bridge already holds, and `plan` is the pure diff between the two that an applier executes.

pub mod budget;
pub mod convert;
pub mod incremental;
pub mod local;
pub mod options;
pub mod plan;
pub mod sync;
pub mod tags;
pub mod upstream;

pub use budget::CallBudget;
pub use incremental::{ChangeAction, IncrementalOptions, IncrementalOutcome, apply_contact_change};
pub use local::{LocalDepartment, LocalDirectory, LocalMember, LocalMembership, LocalStatus};
pub use options::{directory_credential, no_directory_app_reason, strategy_choice, sync_options};
pub use plan::{PlanOptions, SyncPlan, plan};
pub use sync::{SyncOptions, SyncOutcome, run_full_sync};
pub use tags::{TagSyncOptions, TagSyncReport, apply_tag_change, sync_tags};
pub use upstream::{
    FetchObserver, FetchOptions, FetchProgress, FetchStrategy, ItemError, StrategyChoice,
    UpstreamDepartment, UpstreamDirectory, UpstreamMember, UpstreamMembership, VisibleScope,
    WithheldField, fetch_directory,
};
