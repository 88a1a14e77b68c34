//! Rate limits at the HTTP edge: per client address on every request (before authentication,
//! so it is cheap), per principal after authentication, and for login much stricter limits per
//! address, per (address, username) and per username.
//!
//! Answers carry the header fields of draft-ietf-httpapi-ratelimit-headers-10 (September 2025),
//! whose fields are Structured Field lists of policies:
//! `RateLimit-Policy: "per_ip";q=2000;w=1` (quota `q` per window `w` seconds) and
//! `RateLimit: "per_ip";r=1999;t=1` (`r` remaining, `t` seconds until the quota is whole again).
//! A token bucket maps onto them as `q` = burst and `w` = the time the burst takes to refill.
//! A refused request is 429 `rate_limited` with `Retry-After` in whole seconds, rounded up.

mod client;

use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use fb_app::rate_limit::{Limiter, MemoryRateLimitStore, Policy};
use fb_core::Code;
use fb_core::SystemClock;
use fb_core::identity::{Principal, Subject, UserId};
use fb_core::rate_limit::{Decision, Quota, whole_seconds_up};

use crate::error::ApiError;
use crate::state::AppState;

pub use client::{Cidr, ClientAddress, TrustedProxies};

const RATE_LIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATE_LIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Routes no limit applies to: probes must answer even when a load balancer shares an address
/// with clients that are being limited, or a healthy node would be taken out of service.
pub(crate) const UNLIMITED_PATHS: &[&str] = &["/healthz", "/readyz"];

/// The quotas of each policy; `None` turns a policy off. The policy names, shown to clients,
/// are the names of these fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitPolicies {
    /// Every request of one client address.
    pub per_ip: Option<Quota>,
    /// Every request of one user or API key, after authentication.
    pub per_principal: Option<Quota>,
    /// Login attempts from one client address.
    pub login_per_ip: Option<Quota>,
    /// Login attempts for one username from one client address.
    pub login_per_ip_and_user: Option<Quota>,
    /// Login attempts for one username from anywhere.
    pub login_per_user: Option<Quota>,
    /// One-time or recovery codes checked for one user, from anywhere.
    pub second_factor_per_user: Option<Quota>,
    /// Password checks of one logged-in user (password change, turning MFA off).
    pub reauth_per_user: Option<Quota>,
}

/// The limiter, its policies and who may tell us a client's address.
pub struct RateLimits {
    limiter: Limiter,
    policies: RateLimitPolicies,
    proxies: TrustedProxies,
}

impl RateLimits {
    pub fn new(limiter: Limiter, policies: RateLimitPolicies, proxies: TrustedProxies) -> Self {
        Self {
            limiter,
            policies,
            proxies,
        }
    }

    /// No limits (every policy off).
    pub fn none() -> Self {
        Self::new(
            Limiter::local(MemoryRateLimitStore::new(1, Arc::new(SystemClock))),
            RateLimitPolicies::default(),
            TrustedProxies::default(),
        )
    }

    /// Checks `subjects` in order under their policies (skipping policies that are off) and
    /// stops at the first refusal, which becomes the answer.
    async fn check(
        &self,
        subjects: &[(&'static str, Option<Quota>, &str)],
    ) -> Result<Applied, Response> {
        let mut applied = Applied::default();
        for (name, quota, subject) in subjects {
            let Some(quota) = quota else { continue };
            let policy = Policy {
                name,
                quota: *quota,
            };
            let decision = self.limiter.check(&policy, subject).await;
            applied.0.push((policy, decision));
            if !decision.allowed {
                return Err(applied.refusal(policy, decision));
            }
        }
        Ok(applied)
    }

    /// The principal's policy, after authentication.
    pub(crate) async fn check_principal(&self, principal: &Principal) -> Result<Applied, Response> {
        let subject = principal_key(principal);
        self.check(&[("per_principal", self.policies.per_principal, &subject)])
            .await
    }

    /// Checks of a one-time code (or recovery code) for `user`: counted per user, not per
    /// address, so that guesses spread over many addresses share one small budget.
    pub(crate) async fn check_second_factor(&self, user: UserId) -> Result<Applied, Response> {
        let subject = format!("user:{user}");
        self.check(&[(
            "second_factor_per_user",
            self.policies.second_factor_per_user,
            &subject,
        )])
        .await
    }

    /// Password checks of a logged-in user.
    pub(crate) async fn check_reauth(&self, user: UserId) -> Result<Applied, Response> {
        let subject = format!("user:{user}");
        self.check(&[("reauth_per_user", self.policies.reauth_per_user, &subject)])
            .await
    }

    /// The login policies. A username that cannot exist (see `validate_username`) can never log
    /// in, so it is not tracked per name: only the address pays for it, and made-up names cannot
    /// fill the buckets.
    pub(crate) async fn check_login(
        &self,
        client: ClientAddress,
        username: &str,
    ) -> Result<Applied, Response> {
        let address = client.bucket();
        let p = &self.policies;
        let mut subjects = vec![("login_per_ip", p.login_per_ip, address.clone())];
        if fb_core::identity::validate_username("username", username).is_ok() {
            subjects.push((
                "login_per_ip_and_user",
                p.login_per_ip_and_user,
                format!("{address}|{username}"),
            ));
            subjects.push(("login_per_user", p.login_per_user, username.to_owned()));
        }
        let subjects: Vec<_> = subjects
            .iter()
            .map(|(name, quota, subject)| (*name, *quota, subject.as_str()))
            .collect();
        self.check(&subjects).await
    }
}

/// What a principal's limits are counted under: its id, which a rename does not change.
pub(crate) fn principal_key(principal: &Principal) -> String {
    match &principal.subject {
        Subject::User { id, .. } => format!("user:{id}"),
        Subject::ApiKey { id, .. } => format!("api_key:{id}"),
        Subject::System => "system".to_owned(),
    }
}

/// The decisions taken for a request, to be announced on its answer.
#[derive(Default)]
#[must_use]
pub(crate) struct Applied(Vec<(Policy, Decision)>);

impl Applied {
    /// These decisions and `more`'s, announced together.
    pub(crate) fn and(mut self, more: Applied) -> Applied {
        self.0.extend(more.0);
        self
    }

    /// Adds the RateLimit and RateLimit-Policy members of these policies to `response`.
    pub(crate) fn annotate(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        for (policy, decision) in &self.0 {
            let name = policy.name;
            let quota = &policy.quota;
            let window = whole_seconds_up(quota.period());
            add_member(
                headers,
                RATE_LIMIT_POLICY,
                &format!("\"{name}\";q={};w={window}", quota.burst()),
            );
            let reset = whole_seconds_up(decision.reset_after);
            add_member(
                headers,
                RATE_LIMIT,
                &format!("\"{name}\";r={};t={reset}", decision.remaining),
            );
        }
        response
    }

    fn refusal(&self, policy: Policy, decision: Decision) -> Response {
        metrics::counter!("fb_http_rate_limited_total", "policy" => policy.name).increment(1);
        let wait = whole_seconds_up(decision.retry_after).max(1);
        let quota = &policy.quota;
        let error = ApiError::new(
            Code::rate_limited,
            format!(
                "too many requests under the '{}' limit ({} per {} s); retry in {wait} s",
                policy.name,
                quota.burst(),
                whole_seconds_up(quota.period())
            ),
        );
        let mut response = self.annotate(error.into_response());
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        response
    }
}

/// Appends a member to a Structured Field list, keeping one field line so that clients reading
/// only the first line still see every policy.
fn add_member(headers: &mut HeaderMap, name: HeaderName, member: &str) {
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {member}"),
        None => member.to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

/// Middleware on every route: works out the client's address (for the login limits too) and
/// applies the per-address limit.
pub(crate) async fn per_address(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let limits = &state.rate_limits;
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = limits.proxies.client(peer, request.headers());
    request.extensions_mut().insert(client);
    let unlimited = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| UNLIMITED_PATHS.contains(&path.as_str()));
    if unlimited {
        return next.run(request).await;
    }
    let bucket = client.bucket();
    match limits
        .check(&[("per_ip", limits.policies.per_ip, &bucket)])
        .await
    {
        Ok(applied) => applied.annotate(next.run(request).await),
        Err(refusal) => refusal,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;

    fn quota(burst: u32) -> Quota {
        Quota::new(burst, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn answers_list_every_policy_in_one_field_line() {
        let applied = Applied(vec![
            (
                Policy {
                    name: "per_principal",
                    quota: quota(10),
                },
                Decision {
                    allowed: true,
                    remaining: 9,
                    retry_after: Duration::ZERO,
                    reset_after: Duration::from_secs(6),
                },
            ),
            (
                Policy {
                    name: "per_ip",
                    quota: quota(20),
                },
                Decision {
                    allowed: true,
                    remaining: 3,
                    retry_after: Duration::ZERO,
                    reset_after: Duration::from_millis(51_001),
                },
            ),
        ]);
        let response = applied.annotate(StatusCode::OK.into_response());
        let headers = response.headers();
        assert_eq!(
            headers["ratelimit-policy"],
            "\"per_principal\";q=10;w=60, \"per_ip\";q=20;w=60"
        );
        assert_eq!(
            headers["ratelimit"],
            "\"per_principal\";r=9;t=6, \"per_ip\";r=3;t=52"
        );
    }

    #[test]
    fn a_refusal_is_429_rate_limited_with_retry_after_rounded_up() {
        let policy = Policy {
            name: "login_per_ip",
            quota: quota(5),
        };
        let decision = Decision {
            allowed: false,
            remaining: 0,
            retry_after: Duration::from_millis(11_200),
            reset_after: Duration::from_secs(60),
        };
        let response = Applied(vec![(policy, decision)]).refusal(policy, decision);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let headers = response.headers();
        assert_eq!(headers["retry-after"], "12");
        assert_eq!(headers["ratelimit"], "\"login_per_ip\";r=0;t=60");
        assert_eq!(headers["ratelimit-policy"], "\"login_per_ip\";q=5;w=60");
    }
}
