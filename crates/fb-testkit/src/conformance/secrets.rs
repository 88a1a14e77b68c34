use fb_core::ports::Storage;

pub async fn ping_answers(storage: &Storage) {
    storage.health.ping().await.unwrap();
    assert!(["sqlite", "postgres", "memory"].contains(&storage.health.backend()));
}

pub async fn secrets_first_writer_wins(storage: &Storage) {
    let first = storage
        .secrets
        .get_or_insert_secret("signing", b"first-value")
        .await
        .unwrap();
    assert_eq!(first, b"first-value");
    let second = storage
        .secrets
        .get_or_insert_secret("signing", b"second-value")
        .await
        .unwrap();
    assert_eq!(
        second, b"first-value",
        "an existing secret is never replaced"
    );
    let other = storage
        .secrets
        .get_or_insert_secret("other", b"x")
        .await
        .unwrap();
    assert_eq!(other, b"x");
}

pub async fn concurrent_secret_creation_agrees_on_one_value(storage: &Storage) {
    let (a, b, c) = tokio::join!(
        storage.secrets.get_or_insert_secret("race", b"candidate-a"),
        storage.secrets.get_or_insert_secret("race", b"candidate-b"),
        storage.secrets.get_or_insert_secret("race", b"candidate-c"),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a, b);
    assert_eq!(b, c);
}
