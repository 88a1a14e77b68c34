use super::*;

/// `None`: accepted. `Some(text)`: refused, with `text` in one of the reasons.
type Expect = Option<&'static str>;

const OK: Expect = None;

/// (URL, under `internal()`, under `public_only()`).
const TABLE: &[(&str, Expect, Expect)] = &[
    // Plain targets.
    ("https://example.com/hook", OK, OK),
    ("http://93.184.215.14:8080/v1", OK, OK),
    ("https://[2606:4700::1111]/", OK, OK),
    ("http://172.32.0.1/", OK, OK),
    // The plant's LAN: settings may point there, input may not.
    ("http://10.0.0.5:8080/v1/chat", OK, Some("private")),
    ("http://172.16.0.1/", OK, Some("private")),
    ("http://192.168.1.20/", OK, Some("private")),
    ("http://[fd12:3456::1]/", OK, Some("private")),
    ("http://100.64.0.1/", OK, Some("carrier-grade NAT")),
    // Loopback in every spelling a client would connect to.
    ("http://127.0.0.1:11434/", OK, Some("loopback")),
    ("http://127.1.2.3/", OK, Some("loopback")),
    ("http://0x7f.1/", OK, Some("loopback")),
    ("http://2130706433/", OK, Some("loopback")),
    ("http://0177.0.0.1/", OK, Some("loopback")),
    ("http://[::1]/", OK, Some("loopback")),
    ("http://[::ffff:127.0.0.1]/", OK, Some("loopback")),
    ("http://[2002:7f00:1::]/", OK, Some("loopback")),
    ("http://localhost/", OK, Some("loopback")),
    ("http://localhost./", OK, Some("loopback")),
    ("http://LOCALHOST:8000/", OK, Some("loopback")),
    ("http://api.localhost/", OK, Some("loopback")),
    ("http://%6c%6fcalhost/", OK, Some("loopback")),
    ("http://\u{24db}ocalhost/", OK, Some("loopback")),
    // Cloud metadata: never, whatever the policy.
    (
        "http://169.254.169.254/latest/meta-data",
        Some("link-local"),
        Some("link-local"),
    ),
    (
        "http://[::ffff:169.254.169.254]/",
        Some("link-local"),
        Some("link-local"),
    ),
    (
        "http://[64:ff9b::a9fe:a9fe]/",
        Some("link-local"),
        Some("link-local"),
    ),
    ("http://0xa9fea9fe/", Some("link-local"), Some("link-local")),
    ("http://[fe80::1]/", Some("link-local"), Some("link-local")),
    (
        "http://[fd00:ec2::254]/",
        Some("metadata"),
        Some("metadata"),
    ),
    (
        "http://100.100.100.200/",
        Some("metadata"),
        Some("metadata"),
    ),
    // Addresses no service lives at.
    (
        "http://0.0.0.0:8080/",
        Some("unspecified"),
        Some("unspecified"),
    ),
    ("http://0/", Some("unspecified"), Some("unspecified")),
    ("http://[::]/", Some("unspecified"), Some("unspecified")),
    ("http://224.0.0.1/", Some("multicast"), Some("multicast")),
    ("http://[ff02::1]/", Some("multicast"), Some("multicast")),
    (
        "http://255.255.255.255/",
        Some("broadcast"),
        Some("broadcast"),
    ),
    (
        "http://192.0.2.1/",
        Some("documentation"),
        Some("documentation"),
    ),
    (
        "http://[2001:db8::1]/",
        Some("documentation"),
        Some("documentation"),
    ),
    (
        "http://198.18.0.1/",
        Some("benchmarking"),
        Some("benchmarking"),
    ),
    ("http://240.0.0.1/", Some("reserved"), Some("reserved")),
    ("http://[::127.0.0.1]/", Some("reserved"), Some("reserved")),
    ("http://[2001::1]/", Some("reserved"), Some("reserved")),
    // Credentials belong in secrets.
    (
        "http://a:b@example.com/",
        Some("password"),
        Some("password"),
    ),
    (
        "http://user@example.com/",
        Some("user name"),
        Some("user name"),
    ),
    // Schemes other than http(s).
    (
        "file:///etc/passwd",
        Some("scheme 'file'"),
        Some("scheme 'file'"),
    ),
    (
        "gopher://example.com:70/_x",
        Some("scheme 'gopher'"),
        Some("scheme 'gopher'"),
    ),
    (
        "gopher://",
        Some("scheme 'gopher'"),
        Some("scheme 'gopher'"),
    ),
    (
        "ftp://example.com/",
        Some("scheme 'ftp'"),
        Some("scheme 'ftp'"),
    ),
    (
        "javascript:alert(1)",
        Some("must have a host"),
        Some("must have a host"),
    ),
    // Not URLs, or not usable ones.
    (
        "example.com",
        Some("not a valid URL"),
        Some("not a valid URL"),
    ),
    ("http://", Some("not a valid URL"), Some("not a valid URL")),
    (
        "http://[::1/",
        Some("not a valid URL"),
        Some("not a valid URL"),
    ),
    ("http://example.com:0/", Some("port 0"), Some("port 0")),
    (
        "http://example.com:65536/",
        Some("not a valid URL"),
        Some("not a valid URL"),
    ),
];

fn outcome(policy: &UrlPolicy, text: &str) -> Result<(), Vec<String>> {
    policy
        .check("endpoint", text)
        .map(|_| ())
        .map_err(|errors| {
            assert!(errors.iter().all(|e| e.field == "endpoint"), "{errors:?}");
            errors.into_iter().map(|e| e.reason).collect()
        })
}

fn assert_expected(policy_name: &str, policy: &UrlPolicy, text: &str, expect: Expect) {
    match (outcome(policy, text), expect) {
        (Ok(()), None) => {}
        (Err(reasons), Some(needle)) => assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{policy_name} refused {text} for {reasons:?}, expected a reason with {needle:?}"
        ),
        (Ok(()), Some(needle)) => {
            panic!("{policy_name} accepted {text}, expected a refusal for {needle:?}")
        }
        (Err(reasons), None) => panic!("{policy_name} refused {text}: {reasons:?}"),
    }
}

#[test]
fn urls_are_checked_as_clients_would_read_them() {
    for (text, internal, public) in TABLE {
        assert_expected("internal", &UrlPolicy::internal(), text, *internal);
        assert_expected("public_only", &UrlPolicy::public_only(), text, *public);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let reasons = outcome(&UrlPolicy::public_only(), "ftp://u:p@10.0.0.1:21/").unwrap_err();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("scheme 'ftp' is not allowed (allowed: http, https)"));
    assert!(reasons[1].contains("credentials belong in secrets"));
    assert_eq!(
        reasons[2],
        "host 10.0.0.1 is a private address; allowed: public addresses only"
    );
}

#[test]
fn a_policy_can_widen_schemes_and_credentials_and_narrow_ports() {
    let mqtt = UrlPolicy::internal()
        .with_schemes(&["MQTTS"])
        .allowing_userinfo()
        .with_ports(1024..=65535);
    let url = mqtt
        .check("broker", "mqtts://ingest:s3cret@10.1.2.3:8883")
        .unwrap();
    assert_eq!((url.host(), url.port()), ("10.1.2.3", 8883));
    // The password stays in the URL the client uses, and out of what is shown or logged.
    assert_eq!(url.as_url().password(), Some("s3cret"));
    assert_eq!(url.to_string(), "mqtts://ingest:redacted@10.1.2.3:8883");
    assert!(!format!("{url:?}").contains("s3cret"));

    let reasons = outcome(&mqtt, "mqtts://10.1.2.3:883").unwrap_err();
    assert_eq!(reasons, ["port 883 is outside 1024..=65535"]);
    // A scheme without a default port must name one, unless the policy gives it one.
    let reasons = outcome(&mqtt, "mqtts://10.1.2.3").unwrap_err();
    assert_eq!(reasons, ["must name a port"]);
    let defaulted = mqtt.with_default_port("mqtts", 8883);
    assert_eq!(
        defaulted
            .check("broker", "mqtts://10.1.2.3")
            .unwrap()
            .port(),
        8883
    );
    assert_eq!(
        outcome(&defaulted.with_ports(9000..=9999), "mqtts://10.1.2.3").unwrap_err(),
        ["port 8883 is outside 9000..=9999"],
        "the default port is checked like a written one"
    );
}

#[test]
fn opaque_hosts_of_other_schemes_are_read_as_addresses_too() {
    // For schemes the URL standard does not know, the parser leaves the host as text; a
    // resolver would still read `0x7f.1` as 127.0.0.1.
    let policy = UrlPolicy::public_only().with_schemes(&["mqtt"]);
    let reasons = outcome(&policy, "mqtt://0x7f.1:1883").unwrap_err();
    assert_eq!(
        reasons,
        ["host 0x7f.1 is a loopback address; allowed: public addresses only"]
    );
    assert!(outcome(&policy, "mqtt://broker.example.com:1883").is_ok());
}

#[test]
fn overlong_urls_are_refused_before_parsing() {
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
    let reasons = outcome(&UrlPolicy::public_only(), &long).unwrap_err();
    assert_eq!(reasons, ["must be at most 2048 characters"]);
}

#[test]
fn ipv6_addresses_carrying_ipv4_take_its_class() {
    let class = |text: &str| AddressClass::of(text.parse().unwrap());
    assert_eq!(class("::ffff:10.0.0.1"), AddressClass::Private);
    assert_eq!(class("::ffff:8.8.8.8"), AddressClass::Global);
    assert_eq!(class("64:ff9b::7f00:1"), AddressClass::Loopback);
    assert_eq!(class("64:ff9b::808:808"), AddressClass::Global);
    assert_eq!(class("2002:a9fe:a9fe::1"), AddressClass::LinkLocal);
    assert_eq!(class("2002:808:808::1"), AddressClass::Global);
    // Outside 2000::/3 nothing is assigned for unicast.
    assert_eq!(class("4000::1"), AddressClass::Reserved);
    assert_eq!(class("fec0::1"), AddressClass::Private);
}

fn socket(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn one_forbidden_address_among_the_resolved_refuses_them_all() {
    let policy = UrlPolicy::public_only();
    let mixed = vec![socket("93.184.215.14:443"), socket("127.0.0.1:443")];
    let error = check_addresses(&policy, "rebind.example", mixed).unwrap_err();
    assert_eq!(
        error.to_string(),
        "host rebind.example resolves to 127.0.0.1, which is a loopback address"
    );
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(
        error.field_error("webhook.url"),
        FieldError::new("webhook.url", error.to_string())
    );

    let metadata = vec![socket("[::ffff:169.254.169.254]:80")];
    assert!(matches!(
        check_addresses(&UrlPolicy::internal(), "metadata.example", metadata),
        Err(ResolveError::Forbidden {
            class: AddressClass::LinkLocal,
            ..
        })
    ));

    let error = check_addresses(&policy, "empty.example", Vec::new()).unwrap_err();
    assert!(matches!(error, ResolveError::NoAddresses { .. }));

    let public = vec![socket("93.184.215.14:443"), socket("[2606:4700::1111]:443")];
    assert_eq!(
        check_addresses(&policy, "ok.example", public.clone()).unwrap(),
        public
    );
}

#[tokio::test]
async fn address_literals_resolve_to_themselves() {
    let url = UrlPolicy::public_only()
        .check("endpoint", "https://[2606:4700::1111]/x")
        .unwrap();
    assert_eq!(
        resolve_checked(&url).await.unwrap(),
        [socket("[2606:4700::1111]:443")]
    );
}

#[tokio::test]
async fn names_are_resolved_and_their_addresses_checked() {
    // `localhost` is in every hosts file, so this needs no network.
    let url = UrlPolicy::internal()
        .check("endpoint", "http://localhost:8080/")
        .unwrap();
    let addresses = resolve_checked(&url).await.unwrap();
    assert!(!addresses.is_empty());
    for address in addresses {
        assert!(address.ip().is_loopback(), "{address}");
        assert_eq!(address.port(), 8080);
    }
}
