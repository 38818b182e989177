//! wxbridge domain services: the per-tenant runtime built from the configuration (`tenants`: API handles
//! sharing one token manager), the setup checks behind `wxbridge check` (`check`), the directory sync
//! (`directory`: fetch, diff planner, and the full sync run through the store) and run progress
//! (`progress`), and identity (`identity`: sessions and the WeChat account graph).

pub mod admin;
pub mod callbacks;
pub mod check;
pub mod directory;
pub mod error;
pub mod identity;
pub mod messages;
pub mod progress;
pub mod tenants;
pub mod webhooks;

pub use error::DomainError;
/// The database handle, re-exported so the server layer does not depend on `store` directly.
pub use store::Db;
/// The directory's stored shapes, re-exported for the lookup API (which maps them to its own DTOs).
pub use store::{
    DepartmentLink, Gender, MemberLink, Membership, Role, RoleId, RoleMember, RoleOrigin, SyncRun,
    User, UserId, UserRole, UserStatus,
};
pub use tenants::{Credential, CredentialKind, Tenant, Tenants, TokenHealth, ping_database};
