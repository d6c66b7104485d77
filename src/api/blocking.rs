//! HTTP: reachability reports (clients and probes), the verdicts per proxy and country, and
//! the operator's probes.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, limited, with_state};
use crate::api::AppState;
use crate::blocking::probes::Probe;
use crate::blocking::verdict::{BlockState, Report, Reporter, Score, Source, Verdict};
use crate::blocking::{Change, Country, Entry};
use crate::error::Error;
use crate::fleet::model::{ProxyName, UserId};
use crate::fleet::suspicion::Suspicion;
use crate::http::auth::bearer_lookup;
use crate::http::body::json as json_body;
use crate::http::client_ip::client_ip;
use crate::http::rate_limit::Endpoint;
use crate::http::{json, reject};

type Route = warp::reply::Response;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    /// Where the client is, when GeoIP cannot tell (weighs less). Ignored for probes.
    country: Option<String>,
    reports: Vec<ReportEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportEntry {
    proxy: String,
    reachable: bool,
    error: Option<String>,
}

/// Why an entry was not counted.
#[derive(Serialize)]
struct Ignored {
    proxy: String,
    why: &'static str,
}

#[derive(Serialize)]
struct ReportReply {
    country: String,
    source: Source,
    counted: usize,
    ignored: Vec<Ignored>,
    changed: Vec<Change>,
}

/// Who sends a report: an account (or one of its devices), or a probe.
enum Caller {
    User(UserId),
    Probe(Probe),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictQuery {
    state: Option<BlockState>,
    country: Option<String>,
    /// The last row of the previous page, as `proxy:country`.
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct VerdictView {
    proxy: String,
    country: String,
    state: BlockState,
    since: u64,
    score: Score,
    /// The counted reports (the proxy's own page lists them; the list shows none).
    #[serde(skip_serializing_if = "Option::is_none")]
    reports: Option<Vec<ReportView>>,
}

#[derive(Serialize)]
struct ReportView {
    reporter: Reporter,
    source: Source,
    reachable: bool,
    at: u64,
    error: Option<String>,
}

impl ReportView {
    fn new(report: &Report) -> ReportView {
        ReportView {
            reporter: report.reporter,
            source: report.source,
            reachable: report.reachable,
            at: report.at_ms / 1000,
            error: report.error.clone(),
        }
    }
}

fn view(state: &AppState, verdict: Verdict, with_reports: bool, now_ms: u64) -> VerdictView {
    VerdictView {
        score: verdict.score(&state.blocking.rules, now_ms),
        since: verdict.since_ms / 1000,
        reports: with_reports.then(|| verdict.reports.iter().map(ReportView::new).collect()),
        proxy: verdict.proxy,
        country: verdict.country,
        state: verdict.state,
    }
}

/// A user's suspicion as the admin reads it: the score, whether it is quarantined, and the
/// blocks behind it.
#[derive(Serialize)]
pub(crate) struct SuspicionView {
    score: f64,
    threshold: f64,
    quarantined: bool,
    quarantined_at: Option<u64>,
    cleared_at: Option<u64>,
    /// The blocks it was blamed for (the newest 50), each with its share.
    blames: Vec<BlameView>,
    why: String,
}

#[derive(Serialize)]
struct BlameView {
    proxy: String,
    country: String,
    blocked_at: u64,
    share: f64,
}

impl SuspicionView {
    pub(crate) fn new(suspicion: Suspicion, threshold: f64) -> SuspicionView {
        let why = match (suspicion.blames.len(), suspicion.quarantined_ms) {
            (0, _) => "no proxy it was given has been blocked".to_string(),
            (n, Some(_)) => format!(
                "quarantined: blamed for {n} blocks, a score of {:.3} past the threshold {:.3}; \
                 it keeps its proxies, gets no new one and cannot invite",
                suspicion.score, threshold
            ),
            (n, None) => format!(
                "blamed for {n} blocks, a score of {:.3} (quarantine past {:.3})",
                suspicion.score, threshold
            ),
        };
        SuspicionView {
            score: suspicion.score,
            threshold,
            quarantined: suspicion.quarantined_ms.is_some(),
            quarantined_at: suspicion.quarantined_ms.map(|t| t / 1000),
            cleared_at: suspicion.cleared_ms.map(|t| t / 1000),
            blames: suspicion
                .blames
                .into_iter()
                .map(|b| BlameView {
                    proxy: b.proxy,
                    country: b.country,
                    blocked_at: b.blocked_ms / 1000,
                    share: b.share,
                })
                .collect(),
            why,
        }
    }
}

/// A user's trust level, what it allows and why it is what it is (docs/BLOCKING.md).
#[derive(Serialize)]
pub(crate) struct TrustView {
    level: u8,
    /// Since when (unix seconds) it is at this level.
    since: u64,
    /// When it rises next without a block of a proxy it knew (null at the top).
    next_rise_at: Option<u64>,
    may_invite: bool,
    /// The most fallback proxies it holds at this level.
    fallbacks: usize,
    /// Given a proxy just before it was blocked: no new proxy until then (null: none).
    probation_until: Option<u64>,
    /// The explicit changes (start, blocks, an operator's), newest last.
    changes: Vec<TrustChangeView>,
    why: String,
}

#[derive(Serialize)]
struct TrustChangeView {
    at: u64,
    from: u8,
    to: u8,
    why: String,
}

impl TrustView {
    pub(crate) fn of(
        state: &AppState,
        user: &crate::fleet::model::User,
    ) -> crate::error::Result<TrustView> {
        let now_ms = state.clock.now_ms();
        let fleet = &state.fleet;
        let rules = &fleet.settings.trust;
        let (trust, standing) = fleet.trust_of(user, now_ms)?;
        let may_invite = standing.level >= rules.invite_level;
        let fallbacks = fleet.wanted_at(standing.level);
        let days = now_ms.saturating_sub(standing.since_ms) / 86_400_000;
        let rise = match standing.next_rise_ms {
            Some(at) => format!(
                "; it rises to {} at {} unless a proxy it was given is blocked",
                standing.level + 1,
                crate::mail::format_time(at)
            ),
            None => " (the top)".to_string(),
        };
        let invite = if may_invite {
            "may invite".to_string()
        } else {
            format!("may invite from level {}", rules.invite_level)
        };
        let probation_until = trust.held_until_ms.filter(|&t| t > now_ms);
        let probation = probation_until
            .map(|t| {
                format!(
                    "; on probation until {}: it was given a proxy just before that proxy was \
                     blocked, and gets no new one until then",
                    crate::mail::format_time(t)
                )
            })
            .unwrap_or_default();
        let why = format!(
            "level {} for {days} days{rise}; {invite}; holds up to {fallbacks} fallback \
             proxies{probation}",
            standing.level
        );
        Ok(TrustView {
            level: standing.level,
            since: standing.since_ms / 1000,
            next_rise_at: standing.next_rise_ms.map(|t| t / 1000),
            may_invite,
            fallbacks,
            probation_until: probation_until.map(|t| t / 1000),
            changes: trust
                .changes
                .into_iter()
                .map(|c| TrustChangeView {
                    at: c.at_ms / 1000,
                    from: c.from,
                    to: c.to,
                    why: c.why,
                })
                .collect(),
            why,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustBody {
    level: u8,
}

#[derive(Serialize)]
struct Suspect {
    user: UserId,
    email: String,
    status: crate::fleet::model::UserStatus,
    #[serde(flatten)]
    suspicion: SuspicionView,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspectQuery {
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProbe {
    name: String,
    country: String,
}

#[derive(Serialize)]
struct ProbeView {
    id: u64,
    name: String,
    country: String,
    created_at: u64,
    revoked_at: Option<u64>,
    /// Shown once, when the probe is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl ProbeView {
    fn new(probe: Probe, token: Option<String>) -> ProbeView {
        ProbeView {
            id: probe.id,
            name: probe.name,
            country: probe.country,
            created_at: probe.created_ms / 1000,
            revoked_at: probe.revoked_ms.map(|t| t / 1000),
            token,
        }
    }
}

/// The account or probe whose token the Authorization header carries; else 401.
fn caller(state: &Arc<AppState>) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    let state = state.clone();
    bearer_lookup(move |token| {
        if let Some(user) = state.fleet.config_reader_by_token(token)? {
            return Ok(Some(Caller::User(user.id)));
        }
        Ok(state.blocking.probe_by_token(token)?.map(Caller::Probe))
    })
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (Route,), Error = Rejection> + Clone,
) {
    let limit = state.config.max_body_bytes;
    let trusted = Arc::new(state.config.trusted_proxies.clone());
    let admin_base = warp::path("api")
        .and(warp::path("v1"))
        .and(warp::path("admin"))
        .and(admin(&state));
    let report = warp::path!("api" / "v1" / "reports")
        .and(warp::post())
        .and(limited(&state, Endpoint::Report))
        .and(caller(&state))
        .and(client_ip(trusted))
        .and(json_body::<ReportBody>(limit))
        .and(with_state(&state))
        .and_then(report);
    let verdicts = admin_base
        .clone()
        .and(warp::path!("blocking"))
        .and(warp::get())
        .and(warp::query::<VerdictQuery>())
        .and(with_state(&state))
        .and_then(verdicts);
    let of_proxy = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "blocking"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(proxy_verdicts);
    let create_probe = admin_base
        .clone()
        .and(warp::path!("probes"))
        .and(warp::post())
        .and(json_body::<NewProbe>(limit))
        .and(with_state(&state))
        .and_then(create_probe);
    let probes = admin_base
        .clone()
        .and(warp::path!("probes"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(list_probes);
    let revoke_probe = admin_base
        .clone()
        .and(warp::path!("probes" / u64))
        .and(warp::delete())
        .and(with_state(&state))
        .and_then(revoke_probe);
    let suspects = admin_base
        .clone()
        .and(warp::path!("suspects"))
        .and(warp::get())
        .and(warp::query::<SuspectQuery>())
        .and(with_state(&state))
        .and_then(suspects);
    let clear = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "suspicion" / "clear"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(clear_suspicion);
    let set_trust = admin_base
        .clone()
        .and(warp::path!("users" / UserId / "trust"))
        .and(warp::put())
        .and(json_body::<TrustBody>(limit))
        .and(with_state(&state))
        .and_then(set_trust);
    endpoints! {
        POST "/api/v1/reports" => report,
        GET "/api/v1/admin/suspects" => suspects,
        POST "/api/v1/admin/users/{id}/suspicion/clear" => clear,
        PUT "/api/v1/admin/users/{id}/trust" => set_trust,
        GET "/api/v1/admin/blocking" => verdicts,
        GET "/api/v1/admin/proxies/{name}/blocking" => of_proxy,
        POST "/api/v1/admin/probes" => create_probe,
        GET "/api/v1/admin/probes" => probes,
        DELETE "/api/v1/admin/probes/{id}" => revoke_probe,
    }
}

/// Where a client is: GeoIP first (weight 1), else what it declares (weighs less).
fn client_country(
    state: &AppState,
    ip: Option<IpAddr>,
    declared: Option<&str>,
) -> Result<(Country, Source), Error> {
    let located = ip
        .and_then(|ip| state.gateways.geo.lookup(ip))
        .and_then(|place| place.country_code);
    if let Some(code) = located {
        return Ok((Country::parse(&code)?, Source::Located));
    }
    match declared {
        Some(code) => Ok((Country::parse(code)?, Source::Declared)),
        None => Err(Error::invalid(
            "country_unknown",
            "GeoIP cannot place this address: say where you are with \"country\"",
        )),
    }
}

async fn report(
    caller: Caller,
    ip: Option<IpAddr>,
    body: ReportBody,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let (reporter, country, source) = match &caller {
        Caller::User(id) => {
            let (country, source) =
                client_country(&state, ip, body.country.as_deref()).map_err(reject)?;
            if source == Source::Located {
                // Where the user is: a block there moves it.
                (state.fleet.note_country(*id, country.as_str())).map_err(reject)?;
            }
            (Reporter::User(id.0), country, source)
        }
        Caller::Probe(probe) => (
            Reporter::Probe(probe.id),
            Country::parse(&probe.country).map_err(reject)?,
            Source::Probe,
        ),
    };
    // The proxies the client's config lists now (its free subset too).
    let listed: Vec<String> = match &caller {
        Caller::User(id) => match state.fleet.user(*id).map_err(reject)? {
            Some(user) => {
                (state
                    .distribution
                    .config_for(&user, ip, Some(country.as_str()), now_ms))
                .map_err(reject)?
                .proxies
                .into_iter()
                .map(|p| p.name)
                .collect()
            }
            None => Vec::new(),
        },
        Caller::Probe(_) => Vec::new(),
    };
    let mut entries = Vec::with_capacity(body.reports.len());
    let mut ignored = Vec::new();
    for entry in body.reports {
        let proxy = ProxyName::parse(&entry.proxy).map_err(reject)?;
        // A client speaks only of proxies it was given (a censor's account cannot blame
        // proxies it never knew); a probe tests any proxy the registry holds.
        let known = match &caller {
            Caller::User(id) => {
                listed.contains(&entry.proxy)
                    || crate::fleet::exposure::was_given(&state.store, proxy.as_str(), *id)
                        .map_err(reject)?
            }
            Caller::Probe(_) => state
                .registry
                .get(&proxy, now_ms)
                .map_err(reject)?
                .is_some(),
        };
        if known {
            entries.push(Entry {
                proxy,
                reachable: entry.reachable,
                error: entry.error,
            });
        } else {
            ignored.push(Ignored {
                proxy: entry.proxy,
                why: "not_given",
            });
        }
    }
    let changed = state
        .blocking
        .record(reporter, source, &country, &entries, now_ms)
        .await
        .map_err(reject)?;
    let reply = ReportReply {
        country: country.as_str().to_string(),
        source,
        counted: entries.len(),
        ignored,
        changed,
    };
    Ok(json(StatusCode::OK, &reply))
}

async fn verdicts(query: VerdictQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let country = query
        .country
        .as_deref()
        .map(Country::parse)
        .transpose()
        .map_err(reject)?;
    let after = match query.after.as_deref() {
        Some(cursor) => Some(cursor.rsplit_once(':').ok_or_else(|| {
            reject(Error::invalid(
                "invalid_cursor",
                "after is the last row's proxy:country",
            ))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let found = state
        .blocking
        .verdicts(
            query.state,
            country.as_ref().map(Country::as_str),
            after,
            limit,
            now_ms,
        )
        .map_err(reject)?;
    let verdicts: Vec<VerdictView> = found
        .into_iter()
        .map(|v| view(&state, v, false, now_ms))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "verdicts": verdicts }),
    ))
}

async fn proxy_verdicts(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let now_ms = state.clock.now_ms();
    let name = ProxyName::parse(&name).map_err(reject)?;
    let verdicts: Vec<VerdictView> = state
        .blocking
        .verdicts_of(name.as_str(), now_ms)
        .map_err(reject)?
        .into_iter()
        .map(|v| view(&state, v, true, now_ms))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "proxy": name.as_str(), "verdicts": verdicts }),
    ))
}

async fn suspects(query: SuspectQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let threshold = state.fleet.settings.blame.threshold;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let mut suspects = Vec::new();
    for (id, suspicion) in state.fleet.suspects(limit).map_err(reject)? {
        let Some(user) = state.fleet.user(id).map_err(reject)? else {
            continue;
        };
        suspects.push(Suspect {
            user: id,
            email: user.email.as_str().to_string(),
            status: user.status,
            suspicion: SuspicionView::new(suspicion, threshold),
        });
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "suspects": suspects }),
    ))
}

async fn clear_suspicion(id: UserId, state: Arc<AppState>) -> Result<Route, Rejection> {
    let suspicion = state
        .fleet
        .clear_suspicion(id, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let threshold = state.fleet.settings.blame.threshold;
    Ok(json(
        StatusCode::OK,
        &SuspicionView::new(suspicion, threshold),
    ))
}

async fn set_trust(id: UserId, body: TrustBody, state: Arc<AppState>) -> Result<Route, Rejection> {
    state
        .fleet
        .set_trust_level(id, body.level, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let user = state
        .fleet
        .user(id)
        .map_err(reject)?
        .ok_or_else(|| reject(Error::NotFound(format!("user {id}"))))?;
    Ok(json(
        StatusCode::OK,
        &TrustView::of(&state, &user).map_err(reject)?,
    ))
}

async fn create_probe(body: NewProbe, state: Arc<AppState>) -> Result<Route, Rejection> {
    let country = Country::parse(&body.country).map_err(reject)?;
    let (probe, token) = state
        .blocking
        .create_probe(&body.name, &country, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(
        StatusCode::CREATED,
        &ProbeView::new(probe, Some(token)),
    ))
}

async fn list_probes(state: Arc<AppState>) -> Result<Route, Rejection> {
    let probes: Vec<ProbeView> = state
        .blocking
        .probes()
        .map_err(reject)?
        .into_iter()
        .map(|p| ProbeView::new(p, None))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "probes": probes }),
    ))
}

async fn revoke_probe(id: u64, state: Arc<AppState>) -> Result<Route, Rejection> {
    let probe = state
        .blocking
        .revoke_probe(id, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &ProbeView::new(probe, None)))
}
