//! HTTP: invitations. A user invites, lists and revokes its own; anyone holding a code accepts
//! it; the admin lists them all, per user or revokes any, and sets a user's quota.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, check_code, limited, user, with_state};
use crate::api::fleet::created_reply;
use crate::api::AppState;
use crate::distribution::bundle::Bundle;
use crate::error::Error;
use crate::fleet::invitations::{InvitationCounts, Quota};
use crate::fleet::model::{Email, Invitation, InvitationState, RevokedBy, User, UserId};
use crate::http::body::json as json_body;
use crate::http::client_ip::client_ip;
use crate::http::rate_limit::Endpoint;
use crate::http::{json, reject};

type Route = warp::reply::Response;

const DEFAULT_PAGE: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    /// Invitations per period for this user; `null` returns it to the default.
    per_period: Option<u32>,
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    /// The code the previous page ended with.
    before: Option<String>,
}

#[derive(Deserialize)]
struct AllQuery {
    limit: Option<usize>,
    /// The code the previous page ended with (codes in order).
    after: Option<String>,
    state: Option<InvitationState>,
}

/// An invitation as its inviter and the admin see it. The code is shown to them only: it is
/// the invitee's credential until accepted.
#[derive(Serialize)]
struct InvitationView {
    code: String,
    email: Email,
    inviter: UserId,
    state: InvitationState,
    created_at: u64,
    expires_at: u64,
    accepted_user: Option<UserId>,
    /// The invitee's pending account (active once accepted, lapsed if never).
    invitee: Option<UserId>,
    revoked_at: Option<u64>,
    revoked_by: Option<RevokedBy>,
}

impl InvitationView {
    fn new(invitation: Invitation, now_ms: u64) -> InvitationView {
        InvitationView {
            state: invitation.state(now_ms),
            created_at: invitation.created_ms / 1000,
            expires_at: invitation.expires_ms / 1000,
            revoked_at: invitation.revoked.map(|r| r.at_ms / 1000),
            revoked_by: invitation.revoked.map(|r| r.by),
            code: invitation.code,
            email: invitation.email,
            inviter: invitation.inviter,
            accepted_user: invitation.accepted_user,
            invitee: invitation.invitee,
        }
    }
}

/// `POST /api/v1/invitations`' answer: the invitation, and what it carries for the invitee's
/// client, for the inviter to pass on by other channels than the mail.
#[derive(Serialize)]
struct CreatedInvitation {
    #[serde(flatten)]
    invitation: InvitationView,
    /// `proxyfleet-config.json`, as the mail attaches it.
    bundle: Bundle,
    /// The bundle as a `proxyfleet://config?bundle=` link, and that link as a QR code (SVG;
    /// `null` when the link is too long for one).
    link: String,
    qr_svg: Option<String>,
}

/// `GET /api/v1/invitations` and the admin's per-user list.
#[derive(Serialize)]
struct InvitationList {
    invitations: Vec<InvitationView>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<String>,
    quota: Quota,
}

/// `GET /api/v1/admin/invitations`.
#[derive(Serialize)]
struct AllInvitations {
    invitations: Vec<InvitationView>,
    counts: InvitationCounts,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let limit = state.config.max_body_bytes;
    let admin_base = warp::path("api")
        .and(warp::path("v1"))
        .and(warp::path("admin"))
        .and(admin(&state));

    let invite = warp::path!("api" / "v1" / "invitations")
        .and(warp::post())
        .and(limited(&state, Endpoint::InvitationCreate))
        .and(user(&state))
        .and(json_body::<NewInvitation>(limit))
        .and(with_state(&state))
        .and_then(create_invitation);
    let mine = warp::path!("api" / "v1" / "invitations")
        .and(warp::get())
        .and(user(&state))
        .and(warp::query::<PageQuery>())
        .and(with_state(&state))
        .and_then(my_invitations);
    let revoke_mine = warp::path!("api" / "v1" / "invitations" / String)
        .and(warp::delete())
        .and(user(&state))
        .and(with_state(&state))
        .and_then(revoke_my_invitation);
    let accept = warp::path!("api" / "v1" / "invitations" / String / "accept")
        .and(warp::post())
        .and(client_ip(Arc::new(state.config.trusted_proxies.clone())))
        .and(with_state(&state))
        .and_then(accept_invitation);
    let all = admin_base
        .clone()
        .and(warp::path!("invitations"))
        .and(warp::get())
        .and(warp::query::<AllQuery>())
        .and(with_state(&state))
        .and_then(all_invitations);
    let revoke_any = admin_base
        .clone()
        .and(warp::path!("invitations" / String))
        .and(warp::delete())
        .and(with_state(&state))
        .and_then(revoke_any_invitation);
    let of_user = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "invitations"))
        .and(warp::get())
        .and(warp::query::<PageQuery>())
        .and(with_state(&state))
        .and_then(user_invitations);
    let set_quota = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "invitation_quota"))
        .and(warp::put())
        .and(json_body::<QuotaBody>(limit))
        .and(with_state(&state))
        .and_then(set_user_quota);

    endpoints! {
        POST "/api/v1/invitations" => invite,
        GET "/api/v1/invitations" => mine,
        DELETE "/api/v1/invitations/{code}" => revoke_mine,
        POST "/api/v1/invitations/{code}/accept" => accept,
        GET "/api/v1/admin/invitations" => all,
        DELETE "/api/v1/admin/invitations/{code}" => revoke_any,
        GET "/api/v1/admin/users/{id}/invitations" => of_user,
        PUT "/api/v1/admin/users/{id}/invitation_quota" => set_quota,
    }
}

async fn create_invitation(
    inviter: User,
    body: NewInvitation,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let email = Email::parse(&body.email).map_err(reject)?;
    let now_ms = state.clock.now_ms();
    // Read before the invitation's transaction, which may only compute.
    let view = state.distribution.view(now_ms).map_err(reject)?;
    let make_bundle = |invitee: &User, invitation: &Invitation, token: &str| {
        let bundle = state.distribution.invitation_bundle(
            &view,
            invitee,
            token,
            &invitation.code,
            invitation.expires_ms,
            now_ms,
        );
        serde_json::to_value(bundle).unwrap_or_default()
    };
    let invited = state
        .fleet
        .invite(&inviter, &email, now_ms, &make_bundle)
        .await
        .map_err(reject)?;
    let bundle: Bundle = serde_json::from_value(invited.bundle)
        .map_err(|e| reject(Error::caused_by("the invitation's bundle", e)))?;
    let body = CreatedInvitation {
        invitation: InvitationView::new(invited.invitation, now_ms),
        link: bundle.link(),
        qr_svg: bundle.qr_svg(),
        bundle,
    };
    Ok(json(StatusCode::CREATED, &body))
}

async fn accept_invitation(
    code: String,
    ip: Option<std::net::IpAddr>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    // The code is the credential here: each one, and each address, gets a few tries.
    check_code(&state, Endpoint::InvitationAccept, ip, &code)?;
    let created = state
        .fleet
        .accept(&code, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(created_reply(&state, created))
}

fn list_reply(state: &AppState, user: &User, query: PageQuery) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let page = state
        .fleet
        .invitations_of(
            user.id,
            query.limit.unwrap_or(DEFAULT_PAGE),
            query.before.as_deref(),
        )
        .map_err(reject)?;
    let quota = state.fleet.invitation_quota(user, now_ms).map_err(reject)?;
    let body = InvitationList {
        invitations: page
            .invitations
            .into_iter()
            .map(|i| InvitationView::new(i, now_ms))
            .collect(),
        next_before: page.next_before,
        quota,
    };
    Ok(json(StatusCode::OK, &body))
}

async fn my_invitations(
    user: User,
    query: PageQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    list_reply(&state, &user, query)
}

async fn user_invitations(
    id: UserId,
    query: PageQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let user = state
        .fleet
        .user(id)
        .map_err(reject)?
        .ok_or_else(|| reject(Error::NotFound(format!("user {id}"))))?;
    list_reply(&state, &user, query)
}

async fn revoke_my_invitation(
    code: String,
    user: User,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    revoke(&state, &code, Some(user.id)).await
}

async fn revoke_any_invitation(code: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    revoke(&state, &code, None).await
}

async fn revoke(
    state: &AppState,
    code: &str,
    as_inviter: Option<UserId>,
) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let invitation = state
        .fleet
        .revoke_invitation(code, as_inviter, now_ms)
        .await
        .map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &InvitationView::new(invitation, now_ms),
    ))
}

async fn all_invitations(query: AllQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let (page, counts) = state
        .fleet
        .all_invitations(
            query.state,
            query.limit.unwrap_or(DEFAULT_PAGE),
            query.after.as_deref(),
            now_ms,
        )
        .map_err(reject)?;
    let body = AllInvitations {
        invitations: page
            .into_iter()
            .map(|i| InvitationView::new(i, now_ms))
            .collect(),
        counts,
    };
    Ok(json(StatusCode::OK, &body))
}

async fn set_user_quota(
    id: UserId,
    body: QuotaBody,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let quota = state
        .fleet
        .set_invitation_quota(id, body.per_period, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &quota))
}
