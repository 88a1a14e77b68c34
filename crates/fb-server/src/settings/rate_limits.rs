//! The `rate_limits` section and `server.trusted_proxies`.

use std::time::Duration;

use serde::Deserialize;

use fb_core::rate_limit::Quota;

use super::{Secret, SettingsError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub per_ip: QuotaSetting,
    pub per_principal: QuotaSetting,
    pub login_per_ip: QuotaSetting,
    pub login_per_ip_and_user: QuotaSetting,
    pub login_per_user: QuotaSetting,
    pub second_factor_per_user: QuotaSetting,
    pub reauth_per_user: QuotaSetting,
    pub local_max_keys: u64,
    pub redis_url: Secret,
    pub redis_prefix: String,
    pub redis_timeout_ms: u64,
}

/// A token bucket as written in settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSetting {
    /// Requests at once; 0 turns the policy off.
    pub burst: u32,
    /// Time the whole burst takes to come back.
    pub period_secs: u64,
}

impl QuotaSetting {
    /// `None` when the policy is off.
    pub fn quota(&self) -> Option<Quota> {
        Quota::new(self.burst, Duration::from_secs(self.period_secs))
    }
}

impl RateLimitSettings {
    pub fn policies(&self) -> fb_http::RateLimitPolicies {
        fb_http::RateLimitPolicies {
            per_ip: self.per_ip.quota(),
            per_principal: self.per_principal.quota(),
            login_per_ip: self.login_per_ip.quota(),
            login_per_ip_and_user: self.login_per_ip_and_user.quota(),
            login_per_user: self.login_per_user.quota(),
            second_factor_per_user: self.second_factor_per_user.quota(),
            reauth_per_user: self.reauth_per_user.quota(),
        }
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        for (name, quota) in [
            ("per_ip", &self.per_ip),
            ("per_principal", &self.per_principal),
            ("login_per_ip", &self.login_per_ip),
            ("login_per_ip_and_user", &self.login_per_ip_and_user),
            ("login_per_user", &self.login_per_user),
            ("second_factor_per_user", &self.second_factor_per_user),
            ("reauth_per_user", &self.reauth_per_user),
        ] {
            check(
                quota.burst <= 1_000_000,
                &format!("rate_limits.{name}.burst"),
                "must be between 0 (off) and 1000000",
            );
            check(
                (1..=86_400).contains(&quota.period_secs),
                &format!("rate_limits.{name}.period_secs"),
                "must be between 1 and 86400",
            );
        }
        check(
            (100..=100_000_000).contains(&self.local_max_keys),
            "rate_limits.local_max_keys",
            "must be between 100 and 100000000",
        );
        let url = self.redis_url.expose().trim();
        check(
            url.is_empty() || cfg!(feature = "redis"),
            "rate_limits.redis_url",
            "this build has no Redis support (built without the 'redis' feature)",
        );
        check(
            self.redis_prefix.len() <= 64
                && self.redis_prefix.chars().all(|c| c.is_ascii_graphic()),
            "rate_limits.redis_prefix",
            "must be at most 64 printable ASCII characters without spaces",
        );
        check(
            (1..=10_000).contains(&self.redis_timeout_ms),
            "rate_limits.redis_timeout_ms",
            "must be between 1 and 10000",
        );
        errors.extend(super::urls::redis(url));
    }
}

/// `server.trusted_proxies` parsed, with a problem for every entry that is not an address block.
pub(super) fn trusted_proxies(entries: &[String]) -> (fb_http::TrustedProxies, Vec<SettingsError>) {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match entry.parse::<fb_http::Cidr>() {
            Ok(block) => blocks.push(block),
            Err(message) => errors.push(SettingsError::new(
                &format!("server.trusted_proxies[{i}]"),
                message,
            )),
        }
    }
    (fb_http::TrustedProxies::new(blocks), errors)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::{Layers, Settings};

    fn load(env: &[(&str, &str)]) -> Result<Settings, super::super::SettingsErrors> {
        Settings::load(&Layers {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Layers::default()
        })
    }

    fn paths(errors: &super::super::SettingsErrors) -> Vec<&str> {
        errors.0.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn defaults_are_generous_for_ingest_and_strict_for_login() {
        let s = load(&[]).unwrap();
        let p = s.rate_limits.policies();
        let per_second = |q: Option<fb_core::rate_limit::Quota>| {
            let q = q.unwrap();
            f64::from(q.burst()) / q.period().as_secs_f64()
        };
        // 1,000,000 readings/s in batches of 5,000 is 200 requests/s.
        assert!(per_second(p.per_principal) >= 5.0 * 200.0);
        assert!(per_second(p.per_ip) >= per_second(p.per_principal));
        assert!(per_second(p.login_per_ip) < 0.1);
        assert!(p.login_per_ip_and_user.unwrap().burst() < p.login_per_ip.unwrap().burst());
        assert!(
            s.rate_limits.redis_url.is_empty(),
            "one node needs no Redis"
        );
        assert!(s.server.trusted_proxies.is_empty());
    }

    #[test]
    fn quotas_are_set_per_key_and_zero_turns_a_policy_off() {
        let s = load(&[
            ("FB__RATE_LIMITS__PER_IP__BURST", "3"),
            ("FB__RATE_LIMITS__PER_IP__PERIOD_SECS", "3600"),
            ("FB__RATE_LIMITS__LOGIN_PER_USER__BURST", "0"),
        ])
        .unwrap();
        let p = s.rate_limits.policies();
        assert_eq!(p.per_ip.unwrap().burst(), 3);
        assert_eq!(p.per_ip.unwrap().period().as_secs(), 3600);
        assert_eq!(p.login_per_user, None);
    }

    #[test]
    fn bad_rate_limit_settings_are_named() {
        let errors = load(&[
            ("FB__RATE_LIMITS__PER_PRINCIPAL__PERIOD_SECS", "0"),
            ("FB__RATE_LIMITS__LOGIN_PER_IP__BURST", "2000000"),
            ("FB__RATE_LIMITS__LOCAL_MAX_KEYS", "5"),
            ("FB__RATE_LIMITS__REDIS_URL", "rediss://:hunter2@cache:6380"),
            ("FB__RATE_LIMITS__REDIS_PREFIX", "has space"),
            ("FB__RATE_LIMITS__REDIS_TIMEOUT_MS", "0"),
        ])
        .unwrap_err();
        assert_eq!(
            paths(&errors),
            [
                "rate_limits.per_principal.period_secs",
                "rate_limits.login_per_ip.burst",
                "rate_limits.local_max_keys",
                "rate_limits.redis_prefix",
                "rate_limits.redis_timeout_ms",
                "rate_limits.redis_url",
            ]
        );
        assert!(!errors.to_string().contains("hunter2"));
        assert!(errors.0[5].message.contains("scheme 'rediss'"));
    }

    #[test]
    fn a_redis_url_needs_the_redis_feature() {
        let result = load(&[("FB__RATE_LIMITS__REDIS_URL", "redis://127.0.0.1:6379")]);
        if cfg!(feature = "redis") {
            let s = result.unwrap();
            assert!(!format!("{s:?}").contains("6379"), "the URL is a secret");
        } else {
            assert_eq!(paths(&result.unwrap_err()), ["rate_limits.redis_url"]);
        }
    }

    #[test]
    fn trusted_proxies_are_address_blocks_and_each_bad_one_is_named() {
        let s = load(&[(
            "FB__SERVER__TRUSTED_PROXIES",
            "[\"10.0.0.0/8\", \"192.168.1.5\", \"fd00::/8\"]",
        )])
        .unwrap();
        assert_eq!(s.server.trusted_proxies.len(), 3);
        let proxies = s.server.trusted_proxies();
        let behind = |peer: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
            proxies.client(Some(peer.parse::<IpAddr>().unwrap()), &headers)
        };
        let client = fb_http::ClientAddress::Known("198.51.100.7".parse().unwrap());
        assert_eq!(behind("10.9.8.7"), client);
        assert_eq!(behind("192.168.1.5"), client);
        assert_ne!(behind("192.168.1.6"), client);
        let errors = load(&[(
            "FB__SERVER__TRUSTED_PROXIES",
            "[\"10.0.0.0/8\", \"10.0.0.0/40\", \"proxy.local\"]",
        )])
        .unwrap_err();
        assert_eq!(
            paths(&errors),
            ["server.trusted_proxies[1]", "server.trusted_proxies[2]"]
        );
    }
}
