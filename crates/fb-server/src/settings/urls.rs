//! Every URL taken from settings passes the SSRF guard (`fb_outbound::UrlPolicy`) when the
//! settings load, with the key in each problem: a scheme the client does not speak, and hosts
//! no service lives at (link-local and cloud metadata addresses above all: they hand out the
//! host's credentials), are refused before anything connects. Private and loopback addresses
//! are allowed: the plant's own broker, Redis and database sit on its network.

use fb_outbound::{OutboundUrl, UrlPolicy};

use super::SettingsError;

/// `mqtt.url`: the broker MQTT ingest subscribes to. Credentials go in `mqtt.username` and
/// `mqtt.password`, not in the URL.
pub(super) fn mqtt(url: &str) -> Result<OutboundUrl, Vec<SettingsError>> {
    UrlPolicy::internal()
        .with_schemes(&["mqtt", "mqtts"])
        .with_default_port("mqtt", 1883)
        .with_default_port("mqtts", 8883)
        .check("mqtt.url", url.trim())
        .map_err(settings_errors)
}

/// `rate_limits.redis_url`: `redis://[user:password@]host[:port][/db]` (the password belongs in
/// the URL for Redis clients; the setting is a secret), or a local socket `redis+unix://`.
pub(super) fn redis(url: &str) -> Vec<SettingsError> {
    let url = url.trim();
    if url.is_empty() || url.starts_with("redis+unix://") {
        return Vec::new();
    }
    let policy = UrlPolicy::internal()
        .with_schemes(&["redis"])
        .allowing_userinfo()
        .with_default_port("redis", 6379);
    match policy.check("rate_limits.redis_url", url) {
        Ok(_) => Vec::new(),
        Err(errors) => settings_errors(errors),
    }
}

/// `bus.url`: `nats://[user:password@]host[:port]`, or `tls://…` for TLS. Credentials belong in
/// the URL for NATS clients; the setting is a secret, and the bus hands them to the client
/// apart from the address.
pub(super) fn nats(url: &str) -> Vec<SettingsError> {
    let policy = UrlPolicy::internal()
        .with_schemes(&["nats", "tls"])
        .allowing_userinfo()
        .with_default_port("nats", 4222)
        .with_default_port("tls", 4222);
    match policy.check("bus.url", url) {
        Ok(_) => Vec::new(),
        Err(errors) => settings_errors(errors),
    }
}

/// `storage.url` when it names PostgreSQL: user and password in the URL are normal there.
/// A Unix socket (`postgres:///db?host=/run/postgresql`) reaches no network; any `host` or
/// `hostaddr` query parameter that is not a socket path is checked like the URL's own host,
/// since the driver connects there instead.
pub(super) fn postgres(url: &str) -> Vec<SettingsError> {
    const KEY: &str = "storage.url";
    let policy = UrlPolicy::internal()
        .with_schemes(&["postgres", "postgresql"])
        .allowing_userinfo()
        .with_default_port("postgres", 5432)
        .with_default_port("postgresql", 5432);
    let Ok(parsed) = url::Url::parse(url) else {
        return settings_errors(policy.check(KEY, url).err().unwrap_or_default());
    };
    let mut errors = Vec::new();
    let mut hosts_in_query = 0;
    for (name, value) in parsed.query_pairs() {
        if name != "host" && name != "hostaddr" {
            continue;
        }
        hosts_in_query += 1;
        for host in value.split(',').filter(|h| !h.starts_with('/')) {
            let as_url = format!("postgres://{}", bracketed(host.trim()));
            if let Err(problems) = policy.check(KEY, &as_url) {
                errors.extend(settings_errors(problems).into_iter().map(|e| {
                    SettingsError::new(KEY, format!("query parameter {name}: {}", e.message))
                }));
            }
        }
    }
    let socket_only = parsed.host_str().is_none_or(str::is_empty) && hosts_in_query > 0;
    if !socket_only && let Err(problems) = policy.check(KEY, url) {
        errors.extend(settings_errors(problems));
    }
    errors
}

/// `prediction.remote.url`: a model server on the plant's network or a hosted endpoint.
/// Credentials go in the environment variable `prediction.remote.api_key_env` names, not in
/// the URL.
pub(super) fn inference(url: &str) -> Result<OutboundUrl, Vec<SettingsError>> {
    UrlPolicy::internal()
        .with_schemes(&["http", "https"])
        .with_default_port("http", 80)
        .with_default_port("https", 443)
        .check("prediction.remote.url", url.trim())
        .map_err(settings_errors)
}

/// An IPv6 address as a URL host.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn settings_errors(errors: Vec<fb_core::FieldError>) -> Vec<SettingsError> {
    errors
        .into_iter()
        .map(|e| SettingsError::new(&e.field, e.reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Layers, Settings};

    fn problems(env: &[(&str, &str)]) -> Vec<(String, String)> {
        let loaded = Settings::load(&Layers {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Layers::default()
        });
        match loaded {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    fn refused(env: &[(&str, &str)], key: &str, reason: &str) {
        let found = problems(env);
        assert!(
            found
                .iter()
                .any(|(path, message)| path == key && message.contains(reason)),
            "{env:?}: expected {key} refused for {reason:?}, got {found:?}"
        );
    }

    #[test]
    fn cloud_metadata_addresses_are_refused_for_every_url_setting() {
        let metadata = "169.254.169.254";
        refused(
            &[("FB__MQTT__URL", &format!("mqtt://{metadata}:1883"))],
            "mqtt.url",
            "link-local",
        );
        refused(
            &[("FB__RATE_LIMITS__REDIS_URL", &format!("redis://{metadata}"))],
            "rate_limits.redis_url",
            "link-local",
        );
        refused(
            &[(
                "FB__STORAGE__URL",
                &format!("postgres://fb:pw@{metadata}/plant"),
            )],
            "storage.url",
            "link-local",
        );
        // Also in the spellings a resolver reads, and where the driver finds its host.
        refused(
            &[("FB__MQTT__URL", "mqtts://[::ffff:a9fe:a9fe]")],
            "mqtt.url",
            "link-local",
        );
        refused(
            &[(
                "FB__STORAGE__URL",
                "postgres://fb@db/plant?host=169.254.169.254",
            )],
            "storage.url",
            "query parameter host",
        );
        refused(
            &[("FB__RATE_LIMITS__REDIS_URL", "redis://100.100.100.200:6379")],
            "rate_limits.redis_url",
            "cloud metadata",
        );
        refused(
            &[("FB__BUS__URL", &format!("nats://{metadata}:4222"))],
            "bus.url",
            "link-local",
        );
    }

    #[test]
    fn schemes_the_clients_do_not_speak_are_refused() {
        refused(
            &[("FB__MQTT__URL", "http://broker:1883")],
            "mqtt.url",
            "scheme 'http' is not allowed (allowed: mqtt, mqtts)",
        );
        refused(
            &[("FB__RATE_LIMITS__REDIS_URL", "rediss://:hunter2@cache:6380")],
            "rate_limits.redis_url",
            "scheme 'rediss' is not allowed",
        );
        refused(
            &[("FB__STORAGE__URL", "mysql://fb:pw@db/plant")],
            "storage.url",
            "must be empty",
        );
        let secret = problems(&[("FB__RATE_LIMITS__REDIS_URL", "rediss://:hunter2@cache:6380")]);
        assert!(!format!("{secret:?}").contains("hunter2"), "{secret:?}");
        refused(
            &[("FB__BUS__URL", "http://fb:hunter2@nats:4222")],
            "bus.url",
            "scheme 'http' is not allowed (allowed: nats, tls)",
        );
        let secret = problems(&[("FB__BUS__URL", "http://fb:hunter2@nats:4222")]);
        assert!(!format!("{secret:?}").contains("hunter2"), "{secret:?}");
    }

    #[test]
    fn the_plants_own_network_and_the_usual_forms_are_accepted() {
        for env in [
            ("FB__MQTT__URL", "mqtt://10.0.4.2"),
            ("FB__MQTT__URL", "mqtt://broker.plant.lan:1883"),
            ("FB__RATE_LIMITS__REDIS_URL", "redis://:pw@127.0.0.1:6379/2"),
            ("FB__RATE_LIMITS__REDIS_URL", "redis+unix:///run/redis.sock"),
            ("FB__BUS__URL", "nats://fb:pw@10.0.4.3:4222"),
            ("FB__BUS__URL", "tls://nats.plant.lan"),
            (
                "FB__STORAGE__URL",
                "postgres://fb:pw@192.168.1.20:5432/plant",
            ),
            (
                "FB__STORAGE__URL",
                "postgresql:///plant?host=/run/postgresql",
            ),
            (
                "FB__STORAGE__URL",
                "sqlite:///var/lib/factorybrain/plant.db",
            ),
        ] {
            let found = problems(&[env]);
            assert!(found.is_empty(), "{env:?}: {found:?}");
        }
        // Credentials in the MQTT URL would be logged with it; they have settings of their own.
        refused(
            &[("FB__MQTT__URL", "mqtt://ingest:pw@broker:1883")],
            "mqtt.url",
            "credentials belong in secrets",
        );
    }
}
