//! HTTP: users and the rebalancer (admin).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::billing::DeviceView;
use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::distribution::config::{proxy_entries, ProxyEntry};
use crate::error::Error;
use crate::fleet::branch::Branch;
use crate::fleet::links;
use crate::fleet::model::{Email, User, UserId, UserStatus};
use crate::fleet::proxy_actions::ProxyAction;
use crate::fleet::rebalance::{self, plan::Trigger};
use crate::fleet::users::{Created, UserFilter};
use crate::http::body::json as json_body;
use crate::http::{json, reject};
use crate::registry::ProxyName;

type Route = warp::reply::Response;

/// Invitees listed on a user's page (the first ones; the count is not bounded).
const CHILDREN_SHOWN: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    invited_by: Option<UserId>,
    /// The trust level it starts at (default: one below its inviter's, at most
    /// `trust.invitee_max_level`, else `trust.created_level`). A sign-up front for strangers
    /// passes 0.
    level: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyActionBody {
    action: ProxyAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetProxies {
    proxies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GiftPro {
    days: u64,
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<UserId>,
    q: Option<String>,
    /// The email cursor of a search (`q`): the last email of the previous page.
    after_email: Option<String>,
    /// Text in the email or a device's name, or the id: the filtered search.
    contains: Option<String>,
    status: Option<UserStatus>,
    pro: Option<bool>,
    level: Option<u8>,
    proxy: Option<String>,
}

/// How many users one page of a filtered search reads at most (a few milliseconds): a rare
/// match is found over several pages, each bounded.
const SEARCH_BUDGET: usize = 20_000;
/// The longest `contains` text (an email is at most 254 characters).
const CONTAINS_MAX: usize = 256;

impl ListQuery {
    /// The filters given, checked; None when the request is a plain page or an email search.
    fn filter(&self) -> Result<Option<UserFilter>, Error> {
        let contains = self
            .contains
            .as_deref()
            .map(|text| text.trim().to_lowercase())
            .filter(|text| !text.is_empty());
        if contains
            .as_ref()
            .is_some_and(|t| t.chars().count() > CONTAINS_MAX)
        {
            return Err(Error::invalid(
                "contains_too_long",
                format!("`contains` is at most {CONTAINS_MAX} characters"),
            ));
        }
        if self
            .level
            .is_some_and(|level| level > crate::fleet::trust::TOP)
        {
            return Err(Error::invalid(
                "invalid_level",
                format!("levels are 0 to {}", crate::fleet::trust::TOP),
            ));
        }
        let proxy = self.proxy.as_deref().map(ProxyName::parse).transpose()?;
        let filter = UserFilter {
            contains,
            status: self.status,
            pro: self.pro,
            level: self.level,
            proxy,
        };
        let any = filter.contains.is_some()
            || filter.status.is_some()
            || filter.pro.is_some()
            || filter.level.is_some()
            || filter.proxy.is_some();
        Ok(any.then_some(filter))
    }
}

#[derive(Deserialize)]
struct RebalanceQuery {
    dry_run: Option<bool>,
    /// Makes the random choices (which users move) reproducible.
    seed: Option<u64>,
}

#[derive(Serialize)]
struct UserSummary {
    id: UserId,
    email: String,
    status: UserStatus,
    invited_by: Option<UserId>,
    created_at: u64,
    proxies: Vec<ProxyName>,
    pro_until: Option<u64>,
}

impl From<&User> for UserSummary {
    fn from(u: &User) -> Self {
        UserSummary {
            id: u.id,
            email: u.email.as_str().to_string(),
            status: u.status,
            invited_by: u.invited_by,
            created_at: u.created_ms / 1000,
            proxies: u.proxies.clone(),
            pro_until: u.pro_until_ms.map(|ms| ms / 1000),
        }
    }
}

/// `POST /api/v1/admin/users` and an accepted invitation: the account, with its token once.
#[derive(Serialize)]
struct CreatedUser {
    id: UserId,
    email: Email,
    invited_by: Option<UserId>,
    /// Shown once, when the account is made; `None` when the invitation was accepted before.
    token: Option<String>,
    proxies: Vec<ProxyEntry>,
    already_accepted: bool,
}

/// `GET /api/v1/admin/users`: one page, and where the next one starts.
#[derive(Serialize)]
struct UserPage {
    users: Vec<UserSummary>,
    next_after: Option<UserId>,
    next_after_email: Option<String>,
    users_total: u64,
}

/// One entry of a user's assignment history.
#[derive(Serialize)]
struct AssignmentView {
    at: u64,
    proxies: Vec<ProxyName>,
    reason: String,
}

#[derive(Serialize)]
struct ProView {
    active: bool,
    until: Option<u64>,
    proxies: Vec<ProxyName>,
}

/// `GET /api/v1/admin/users/{id}`: everything the panel's user page shows.
#[derive(Serialize)]
struct UserDetail {
    user: UserSummary,
    parent: Option<UserId>,
    children: Vec<UserId>,
    devices: Vec<DeviceView>,
    payments: Vec<crate::billing::payments::Payment>,
    /// What the client is served now, as the config server renders it.
    config: crate::distribution::config::ClientConfig,
    proxies: Vec<ProxyEntry>,
    pro: ProView,
    pro_until: Option<u64>,
    config_version: u64,
    history: Vec<AssignmentView>,
    /// Where its last config request (or located report) came from.
    country: Option<String>,
    /// Blocks it was blamed for, and whether it is quarantined (docs/BLOCKING.md).
    suspicion: crate::api::blocking::SuspicionView,
    /// Its trust level, what the level allows, and why.
    trust: crate::api::blocking::TrustView,
}

#[derive(Serialize)]
struct PlanHistory {
    plans: Vec<rebalance::plan::Plan>,
}

/// `POST /api/v1/admin/proxies/{name}/action`: the proxy's role after the action.
#[derive(Serialize)]
struct ProxyActionDone {
    name: ProxyName,
    role: crate::registry::Role,
    action: ProxyAction,
    /// The background tasks that carry the action out (moving users off, the retire hook):
    /// the change is made, their outcome is not known yet. Follow each at
    /// `GET /api/v1/admin/queue/tasks/{id}`.
    tasks: Vec<TaskRef>,
}

/// A task queued by an operator's action, as its answer names it.
#[derive(Serialize)]
pub(crate) struct TaskRef {
    id: u64,
    kind: String,
}

/// The task references for `ids` (a task the queue no longer keeps is left out).
pub(crate) fn task_refs(state: &AppState, ids: &[u64]) -> crate::error::Result<Vec<TaskRef>> {
    let mut refs = Vec::new();
    for id in ids {
        if let Some(task) = state.queue.get(*id)? {
            refs.push(TaskRef {
                id: task.id,
                kind: task.kind,
            });
        }
    }
    Ok(refs)
}

/// `GET /api/v1/admin/proxies/{name}/users`: who is assigned the proxy, a page at a time.
#[derive(Serialize)]
struct ProxyUsersPage {
    proxy: ProxyName,
    /// Every user assigned to it (the link count).
    total: u64,
    users: Vec<ProxyUserView>,
    next_after: Option<UserId>,
}

#[derive(Serialize)]
struct ProxyUserView {
    id: UserId,
    email: Email,
    status: UserStatus,
    pro: bool,
    joined_at: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyUsersQuery {
    limit: Option<usize>,
    /// The user id the previous page ended with.
    after: Option<UserId>,
}

#[derive(Serialize)]
struct ProxyTasks {
    tasks: Vec<crate::queue::Task>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyTasksQuery {
    limit: Option<usize>,
}

/// The answer to a new account (`POST /api/v1/admin/users`, an accepted invitation).
pub(crate) fn created_reply(state: &AppState, created: Created) -> Route {
    let status = if created.token.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let proxies =
        proxy_entries(&state.registry, &created.user, state.clock.now_ms()).unwrap_or_default();
    let already_accepted = created.token.is_none();
    let body = CreatedUser {
        id: created.user.id,
        email: created.user.email,
        invited_by: created.user.invited_by,
        token: created.token,
        proxies,
        already_accepted,
    };
    json(status, &body)
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

    let create = admin_base
        .clone()
        .and(warp::path!("users"))
        .and(warp::post())
        .and(json_body::<NewUser>(limit))
        .and(with_state(&state))
        .and_then(create_user);
    let list = admin_base
        .clone()
        .and(warp::path!("users"))
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(with_state(&state))
        .and_then(list_users);
    let one = admin_base
        .clone()
        .and(warp::path!("users" / UserId))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(user_detail);
    let disable = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "disable"))
        .and(warp::post())
        .and(warp::query::<BranchQuery>())
        .and(with_state(&state))
        .and_then(disable_user);
    let enable = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "enable"))
        .and(warp::post())
        .and(warp::query::<BranchQuery>())
        .and(with_state(&state))
        .and_then(enable_user);
    let set_proxies = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "proxies"))
        .and(warp::put())
        .and(json_body::<SetProxies>(limit))
        .and(with_state(&state))
        .and_then(set_user_proxies);
    let gift = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "pro"))
        .and(warp::post())
        .and(json_body::<GiftPro>(limit))
        .and(with_state(&state))
        .and_then(gift_pro);
    let rebalance = admin_base
        .clone()
        .and(warp::path!("rebalance"))
        .and(warp::post())
        .and(warp::query::<RebalanceQuery>())
        .and(with_state(&state))
        .and_then(run_rebalance);
    let plans = admin_base
        .clone()
        .and(warp::path!("rebalance" / "plans"))
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(with_state(&state))
        .and_then(rebalance_plans);
    let apply_plan = admin_base
        .clone()
        .and(warp::path!("rebalance" / "plans" / u64 / "apply"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(apply_plan);
    let invitees = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "invitees"))
        .and(warp::get())
        .and(warp::query::<InviteesQuery>())
        .and(with_state(&state))
        .and_then(user_invitees);
    let exposure = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "exposure"))
        .and(warp::get())
        .and(warp::query::<ExposureQuery>())
        .and(with_state(&state))
        .and_then(proxy_exposure);
    let proxy_users = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "users"))
        .and(warp::get())
        .and(warp::query::<ProxyUsersQuery>())
        .and(with_state(&state))
        .and_then(proxy_users);
    let proxy_tasks = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "tasks"))
        .and(warp::get())
        .and(warp::query::<ProxyTasksQuery>())
        .and(with_state(&state))
        .and_then(proxy_tasks);
    let proxy_action = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "action"))
        .and(warp::post())
        .and(json_body::<ProxyActionBody>(limit))
        .and(with_state(&state))
        .and_then(act_on_proxy);

    endpoints! {
        POST "/api/v1/admin/users" => create,
        GET "/api/v1/admin/users" => list,
        GET "/api/v1/admin/users/{id}" => one,
        POST "/api/v1/admin/users/{id}/disable" => disable,
        POST "/api/v1/admin/users/{id}/enable" => enable,
        PUT "/api/v1/admin/users/{id}/proxies" => set_proxies,
        POST "/api/v1/admin/users/{id}/pro" => gift,
        POST "/api/v1/admin/rebalance" => rebalance,
        GET "/api/v1/admin/rebalance/plans" => plans,
        POST "/api/v1/admin/rebalance/plans/{id}/apply" => apply_plan,
        POST "/api/v1/admin/proxies/{name}/action" => proxy_action,
        GET "/api/v1/admin/proxies/{name}/exposure" => exposure,
        GET "/api/v1/admin/proxies/{name}/tasks" => proxy_tasks,
        GET "/api/v1/admin/proxies/{name}/users" => proxy_users,
        GET "/api/v1/admin/users/{id}/invitees" => invitees,
    }
}

async fn create_user(body: NewUser, state: Arc<AppState>) -> Result<Route, Rejection> {
    let email = Email::parse(&body.email).map_err(reject)?;
    let created = state
        .fleet
        .create_user(&email, body.invited_by, body.level, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(created_reply(&state, created))
}

async fn list_users(q: ListQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    if let Some(filter) = q.filter().map_err(reject)? {
        let found = state
            .fleet
            .find_users(&filter, q.after, limit, SEARCH_BUDGET, state.clock.now_ms())
            .map_err(reject)?;
        let page = UserPage {
            users: found.users.iter().map(UserSummary::from).collect(),
            next_after: found.next_after,
            next_after_email: None,
            users_total: state.fleet.users_total().map_err(reject)?,
        };
        return Ok(json(StatusCode::OK, &page));
    }
    let users = state
        .fleet
        .list_users(q.after, q.q.as_deref(), q.after_email.as_deref(), limit)
        .map_err(reject)?;
    let full = users.len() == limit;
    let last = users.last().filter(|_| full);
    let next_after = last.map(|u| u.id);
    let next_after_email = last.map(|u| u.email.as_str().to_string());
    let page = UserPage {
        users: users.iter().map(UserSummary::from).collect(),
        next_after,
        next_after_email,
        users_total: state.fleet.users_total().map_err(reject)?,
    };
    Ok(json(StatusCode::OK, &page))
}

async fn user_detail(id: UserId, state: Arc<AppState>) -> Result<Route, Rejection> {
    let user = state
        .fleet
        .user(id)
        .map_err(reject)?
        .ok_or_else(|| reject(Error::NotFound(format!("user {id}"))))?;
    let now = state.clock.now_ms();
    let proxies = proxy_entries(&state.registry, &user, now).map_err(reject)?;
    let history = links::history(&state.store, id).map_err(reject)?;
    let history = history
        .into_iter()
        .map(|h| AssignmentView {
            at: h.at_ms / 1000,
            proxies: h.proxies,
            reason: h.reason,
        })
        .collect();
    let children =
        crate::fleet::invitees::children(&state.store, id, CHILDREN_SHOWN).map_err(reject)?;
    let devices = user.devices.iter().map(DeviceView::from).collect();
    let payments = state.billing.payments_of(id).map_err(reject)?;
    // What the client is served now, as the config server renders it (account subset).
    let country = state.fleet.country_of(id).map_err(reject)?;
    let config = state
        .distribution
        .config_for(&user, None, country.as_deref(), now)
        .map_err(reject)?;
    let detail = UserDetail {
        user: UserSummary::from(&user),
        parent: user.invited_by,
        children,
        devices,
        payments,
        config,
        proxies,
        pro: ProView {
            active: user.is_pro(now),
            until: user.pro_until_ms.map(|t| t / 1000),
            proxies: user.pro_proxies.clone(),
        },
        pro_until: user.pro_until_ms.map(|t| t / 1000),
        config_version: user.config_version,
        history,
        country,
        suspicion: crate::api::blocking::SuspicionView::new(
            state
                .fleet
                .suspicion(id)
                .map_err(reject)?
                .unwrap_or_default(),
            state.fleet.settings.blame.threshold,
        ),
        trust: crate::api::blocking::TrustView::of(&state, &user).map_err(reject)?,
    };
    Ok(json(StatusCode::OK, &detail))
}

/// `?subtree=true&invited_after=T` on disable and enable: the user and everyone below it in
/// the invitation tree (those who joined after `T`, unix seconds, if given).
#[derive(Deserialize)]
struct BranchQuery {
    subtree: Option<bool>,
    invited_after: Option<u64>,
}

/// The user as it now is, and every user the call changed (itself, or its branch).
#[derive(Serialize)]
struct StatusChanged {
    #[serde(flatten)]
    user: UserSummary,
    affected: Vec<UserId>,
}

async fn set_status(
    id: UserId,
    query: BranchQuery,
    disable: bool,
    state: &AppState,
) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let fleet = &state.fleet;
    if !query.subtree.unwrap_or(false) {
        if query.invited_after.is_some() {
            return Err(reject(Error::invalid(
                "invited_after_without_subtree",
                "invited_after narrows a subtree: add subtree=true",
            )));
        }
        let changed = if disable {
            fleet.disable(id, now_ms).await
        } else {
            fleet.enable(id, now_ms).await
        };
        let user = changed.map_err(reject)?;
        let body = StatusChanged {
            affected: vec![user.id],
            user: UserSummary::from(&user),
        };
        return Ok(json(StatusCode::OK, &body));
    }
    let branch = Branch {
        root: id,
        joined_after_ms: query.invited_after.map(|secs| secs.saturating_mul(1000)),
    };
    let changed = fleet
        .set_branch_status(branch, disable, now_ms)
        .await
        .map_err(reject)?;
    let root = match changed.first().filter(|u| u.id == id) {
        Some(user) => user.clone(),
        None => fleet
            .user(id)
            .map_err(reject)?
            .ok_or_else(|| reject(Error::NotFound(format!("user {id}"))))?,
    };
    let body = StatusChanged {
        user: UserSummary::from(&root),
        affected: changed.iter().map(|u| u.id).collect(),
    };
    Ok(json(StatusCode::OK, &body))
}

async fn disable_user(
    id: UserId,
    query: BranchQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    set_status(id, query, true, &state).await
}

async fn enable_user(
    id: UserId,
    query: BranchQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    set_status(id, query, false, &state).await
}

async fn set_user_proxies(
    id: UserId,
    body: SetProxies,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let user = state
        .fleet
        .set_user_proxies(id, body.proxies, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &UserSummary::from(&user)))
}

async fn gift_pro(id: UserId, body: GiftPro, state: Arc<AppState>) -> Result<Route, Rejection> {
    let user = state
        .billing
        .gift(id, body.days, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &UserSummary::from(&user)))
}

async fn run_rebalance(q: RebalanceQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let dry_run = q.dry_run.unwrap_or(true);
    let plan = rebalance::run(
        &state.fleet,
        &state.rebalance,
        Trigger::Manual,
        dry_run,
        q.seed,
        state.clock.now_ms(),
    )
    .await
    .map_err(reject)?;
    state.metrics.rebalanced(&plan);
    Ok(json(StatusCode::OK, &plan))
}

async fn apply_plan(id: u64, state: Arc<AppState>) -> Result<Route, Rejection> {
    let plan = rebalance::apply_reviewed(&state.fleet, id, state.clock.now_ms())
        .await
        .map_err(reject)?;
    state.metrics.rebalanced(&plan);
    Ok(json(StatusCode::OK, &plan))
}

async fn rebalance_plans(q: ListQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let plans =
        rebalance::history(&state.fleet, q.limit.unwrap_or(20).clamp(1, 200)).map_err(reject)?;
    Ok(json(StatusCode::OK, &PlanHistory { plans }))
}

async fn act_on_proxy(
    name: String,
    body: ProxyActionBody,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let name = ProxyName::parse(&name).map_err(reject)?;
    let changed = state
        .fleet
        .proxy_action(&name, body.action, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let done = ProxyActionDone {
        tasks: task_refs(&state, &changed.tasks).map_err(reject)?,
        name: changed.proxy.name,
        role: changed.proxy.role,
        action: body.action,
    };
    Ok(json(StatusCode::OK, &done))
}

async fn proxy_users(
    name: String,
    query: ProxyUsersQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let name = ProxyName::parse(&name).map_err(reject)?;
    let now_ms = state.clock.now_ms();
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let (users, more) = state
        .fleet
        .users_page_on(&name, query.after, limit)
        .map_err(reject)?;
    let next_after = if more {
        users.last().map(|u| u.id)
    } else {
        None
    };
    let body = ProxyUsersPage {
        total: state.fleet.users_on(name.as_str()).map_err(reject)?,
        proxy: name,
        users: users
            .into_iter()
            .map(|u| ProxyUserView {
                pro: u.is_pro(now_ms),
                id: u.id,
                joined_at: u.created_ms / 1000,
                status: u.status,
                email: u.email,
            })
            .collect(),
        next_after,
    };
    Ok(json(StatusCode::OK, &body))
}

/// `GET /api/v1/admin/proxies/{name}/tasks`: what the operator's actions and the fleet's own
/// reactions queued for this proxy, newest first, each with its state, tries and last error.
/// Answers for a proxy that has left the registry too (its retire hook outlives it).
async fn proxy_tasks(
    name: String,
    query: ProxyTasksQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let name = ProxyName::parse(&name).map_err(reject)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let tasks = state.fleet.proxy_tasks(&name, limit).map_err(reject)?;
    Ok(json(StatusCode::OK, &ProxyTasks { tasks }))
}

#[derive(Deserialize)]
struct ExposureQuery {
    limit: Option<usize>,
    /// The user id the previous page ended with.
    after: Option<UserId>,
}

/// One time a user held the proxy (unix seconds; `until` absent while it holds it still).
#[derive(Serialize)]
struct PeriodView {
    from: u64,
    until: Option<u64>,
    seconds: u64,
}

#[derive(Serialize)]
struct ExposedUser {
    user: UserId,
    email: Email,
    status: UserStatus,
    joined_at: u64,
    periods: Vec<PeriodView>,
    /// Who invited the user, who invited that one, and so on: nearest first.
    inviters: Vec<UserId>,
}

/// `GET /api/v1/admin/proxies/{name}/exposure`.
#[derive(Serialize)]
struct ExposureView {
    proxy: ProxyName,
    users: Vec<ExposedUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<UserId>,
}

async fn proxy_exposure(
    name: String,
    query: ExposureQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    // A proxy that is gone keeps its exposure: the name is checked for shape only.
    let name = ProxyName::parse(&name).map_err(reject)?;
    let now_ms = state.clock.now_ms();
    let (page, next_after) = crate::fleet::exposure::of_proxy(
        &state.store,
        &name,
        query.after,
        query.limit.unwrap_or(100),
    )
    .map_err(reject)?;
    let users = page
        .into_iter()
        .map(|exposed| ExposedUser {
            periods: exposed
                .periods
                .iter()
                .map(|p| PeriodView {
                    from: p.from_ms / 1000,
                    until: p.until_ms.map(|u| u / 1000),
                    seconds: p.until_ms.unwrap_or(now_ms).saturating_sub(p.from_ms) / 1000,
                })
                .collect(),
            inviters: exposed.inviters,
            user: exposed.user.id,
            joined_at: exposed.user.created_ms / 1000,
            status: exposed.user.status,
            email: exposed.user.email,
        })
        .collect();
    let body = ExposureView {
        proxy: name,
        users,
        next_after,
    };
    Ok(json(StatusCode::OK, &body))
}

/// Invitees per page at most.
const MAX_INVITEES_PAGE: usize = 500;

#[derive(Deserialize)]
struct InviteesQuery {
    limit: Option<usize>,
    /// The user id the previous page ended with.
    after: Option<UserId>,
}

#[derive(Serialize)]
struct InviteeView {
    id: UserId,
    email: Email,
    status: UserStatus,
    joined_at: u64,
    /// How many this invitee invited in turn (the next level's size).
    invited: u64,
}

/// `GET /api/v1/admin/users/{id}/invitees`: one level of the invitation tree below a user.
#[derive(Serialize)]
struct InviteesView {
    user: UserId,
    /// Every direct invitee, not just this page's.
    total: u64,
    invitees: Vec<InviteeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<UserId>,
}

async fn user_invitees(
    id: UserId,
    query: InviteesQuery,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    use crate::fleet::invitees;
    if state.fleet.user(id).map_err(reject)?.is_none() {
        return Err(reject(Error::NotFound(format!("user {id}"))));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_INVITEES_PAGE);
    let (page, next_after) =
        invitees::page(&state.store, id, query.after, limit).map_err(reject)?;
    let body = InviteesView {
        user: id,
        total: invitees::count(&state.store, id).map_err(reject)?,
        invitees: page
            .into_iter()
            .map(|(user, invited)| InviteeView {
                id: user.id,
                joined_at: user.created_ms / 1000,
                status: user.status,
                email: user.email,
                invited,
            })
            .collect(),
        next_after,
    };
    Ok(json(StatusCode::OK, &body))
}
