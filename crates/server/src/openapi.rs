//! The OpenAPI document, generated from the handlers' annotations (utoipa). It is served at
//! `/api/v1/openapi.json`, printed by `wxbridge openapi`, and committed as `docs/openapi.json`; a test fails
//! when the committed file drifts from the code.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::auth;
use crate::routes::identities;
use crate::routes::inbox;
use crate::routes::jssdk;
use crate::routes::messages;
use crate::routes::webhooks;
use crate::routes::{directory, health, miniprogram, sessions, sync, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxbridge",
        description = "The bridge between a business system and WeCom / WeChat. Tenant APIs take \
                       `Authorization: Bearer wxb_...` with one of the tenant's API keys."
    ),
    paths(
        health::healthz,
        health::readyz,
        tokens::token_health,
        directory::user,
        directory::user_by_wecom_userid,
        directory::users,
        directory::user_roles,
        directory::role,
        directory::role_members,
        directory::role_department,
        directory::role_by_department,
        sync::start_sync,
        sync::list_runs,
        sync::get_run,
        sync::run_events,
        jssdk::config,
        sessions::verify_session,
        sessions::revoke_session,
        identities::list_identities,
        identities::link_identity,
        identities::unlink_identity,
        identities::identity_audit,
        identities::backfill_followers,
        auth::me,
        miniprogram::login,
        miniprogram::decrypt,
        miniprogram::phone,
        messages::send_message,
        messages::list_messages,
        messages::get_message,
        messages::recall_message,
        messages::send_message_by_key,
        messages::get_message_by_key,
        messages::recall_message_by_key,
        inbox::list_inbox,
        inbox::inbox_stats,
        inbox::requeue_inbox,
        webhooks::list_deliveries,
        webhooks::get_delivery,
        webhooks::replay_delivery,
        webhooks::replay_dead
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        tokens::TokenHealthResponse,
        domain::TokenHealth,
        domain::CredentialKind,
        directory::UserDto,
        directory::UserStatusDto,
        directory::GenderDto,
        directory::WecomMemberDto,
        directory::UserSummaryDto,
        directory::RoleDto,
        directory::WecomDepartmentDto,
        directory::UserRoleDto,
        directory::UserRolesResponse,
        directory::RoleMemberDto,
        directory::RoleMembersResponse,
        directory::UserListResponse,
        sync::StartSyncRequest,
        sync::StartSyncResponse,
        sync::SyncRunDto,
        sync::SyncRunsResponse,
        sync::SyncCountersDto,
        sync::EntityCountersDto,
        domain::identity::jssdk::JssdkConfig,
        domain::identity::jssdk::WxConfig,
        domain::identity::jssdk::WxAgentConfig,
        domain::identity::jssdk::JsProvider,
        sessions::VerifySessionRequest,
        sessions::RevokeSessionRequest,
        sessions::VerifySessionResponse,
        sessions::RevokeSessionResponse,
        sessions::SessionDto,
        sessions::SessionUserDto,
        sessions::SessionRoleDto,
        sessions::IdentitiesDto,
        sessions::WechatIdentityDto,
        identities::IdentityActionRequest,
        identities::UserIdentitiesResponse,
        identities::IdentityAuditDto,
        identities::IdentityActionResponse,
        identities::IdentityAuditResponse,
        identities::BackfillResponse,
        miniprogram::MiniCodeRequest,
        miniprogram::MiniDecryptRequest,
        miniprogram::DecryptKindDto,
        miniprogram::MiniUserDto,
        miniprogram::MiniLoginResponse,
        miniprogram::MiniPhoneResponse,
        miniprogram::MiniDecryptResponse,
        messages::SendMessageResponse,
        messages::MessagesResponse,
        messages::RecallResponse,
        domain::messages::SendRequest,
        domain::messages::Recipients,
        domain::messages::RoleTarget,
        domain::messages::MessageContent,
        domain::messages::Article,
        domain::messages::MessageView,
        domain::messages::CallView,
        domain::messages::InvalidRecipient,
        domain::messages::RecallOutcome,
        inbox::InboxMessageDto,
        inbox::InboxListResponse,
        inbox::InboxStatusCount,
        inbox::InboxStatsResponse,
        inbox::RequeueResponse,
        webhooks::WebhookDeliveryDto,
        webhooks::WebhookCount,
        webhooks::WebhookDeliveriesResponse,
        webhooks::WebhookReplayResponse,
        webhooks::WebhookReplayDeadResponse
    )),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "tokens", description = "Access-token and ticket health per credential"),
        (name = "directory", description = "Both-way lookup between local users/roles and WeCom members/departments"),
        (name = "sync", description = "Directory sync runs: start, history, live progress (Server-Sent Events)"),
        (name = "sessions", description = "Verify and revoke login session tokens (wxs_...)"),
        (name = "identities", description = "Operator link / unlink of WeChat identities, audited"),
        (name = "jssdk", description = "wx.config / wx.agentConfig parameters for a page (public; CORS for the app's JS-safe domains)"),
        (name = "messages", description = "Message push through WeCom apps: the outbox, status per call, recall"),
        (name = "webhooks", description = "Business webhook deliveries: list, dead letters, replay"),
        (name = "callbacks", description = "The callback inbox: stored callbacks, counts by status, requeue of dead ones"),
        (name = "miniprograms", description = "Mini-program login (code -> session token), encryptedData decryption and phone numbers"),
    )
)]
struct ApiDoc;

/// Declares the `api_key` bearer scheme the tenant routes refer to.
struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("wxb_...")
                    .build(),
            ),
        );
    }
}

/// The document as data.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a trailing newline, exactly as committed in `docs/openapi.json`.
pub fn document_json() -> String {
    let mut s = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"));
    s.push('\n');
    s
}

pub(crate) async fn serve_document() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
