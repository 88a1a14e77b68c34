use time::Duration;
use uuid::Uuid;

use fb_core::error::Code;
use fb_core::ports::{DeadLetter, DeadLetterFilter, Storage};

use crate::fixtures::instant;

fn letter(code: Code, payload: &[u8]) -> DeadLetter {
    DeadLetter {
        id: Uuid::now_v7(),
        received_at: instant(),
        source: "http".into(),
        code,
        reason: format!("{} happened", code.as_str()),
        payload: payload.to_vec(),
        content_type: "application/json".into(),
        replayed_at: None,
    }
}

pub async fn dead_letters_keep_payloads_and_page_by_id(storage: &Storage) {
    let store = &storage.dead_letters;
    let a = letter(
        Code::unknown_machine,
        br#"{"machine":"ghost","sensor":"t","value":1}"#,
    );
    let b = letter(Code::invalid_json, b"\x00\xffnot json");
    let c = letter(Code::unknown_machine, b"{}");
    store
        .insert_dead_letters(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    store.insert_dead_letters(&[]).await.unwrap();

    let all = store
        .list_dead_letters(&DeadLetterFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all,
        [a.clone(), b.clone(), c.clone()],
        "oldest first, bytes intact"
    );
    let page = DeadLetterFilter {
        after: Some(a.id),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        store.list_dead_letters(&page).await.unwrap(),
        std::slice::from_ref(&b)
    );
    let by_code = DeadLetterFilter {
        code: Some(Code::unknown_machine),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store.list_dead_letters(&by_code).await.unwrap(),
        [a.clone(), c.clone()]
    );
    assert_eq!(store.dead_letter(b.id).await.unwrap(), Some(b));
    assert_eq!(store.dead_letter(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn replayed_dead_letters_leave_the_pending_list(storage: &Storage) {
    let store = &storage.dead_letters;
    let a = letter(Code::unknown_sensor, b"1");
    let b = letter(Code::unknown_sensor, b"2");
    store
        .insert_dead_letters(&[a.clone(), b.clone()])
        .await
        .unwrap();
    let at = instant() + Duration::minutes(3);
    assert!(store.mark_replayed(a.id, at).await.unwrap());
    assert!(!store.mark_replayed(Uuid::now_v7(), at).await.unwrap());
    let pending = DeadLetterFilter {
        pending_only: true,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_dead_letters(&pending).await.unwrap(), [b]);
    assert_eq!(
        store.dead_letter(a.id).await.unwrap().unwrap().replayed_at,
        Some(at)
    );
}
