//! Sessions, refresh-token rotation and reuse, second factors; and the credential clean-up a
//! disabled user needs.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use fb_core::identity::Role;
use fb_core::ports::Storage;
use fb_core::session::{EndReason, RefreshToken, Rotation, Session, SessionId};

use crate::fixtures;

fn session_of(user: &fb_core::identity::User, at: OffsetDateTime) -> Session {
    Session {
        id: SessionId(Uuid::now_v7()),
        user: user.id,
        created_at: at,
        refreshed_at: at,
        expires_at: at + Duration::days(30),
        mfa: false,
        client: "curl/8.5".into(),
        source: "192.0.2.7".into(),
        ended_at: None,
        end_reason: None,
    }
}

fn token(hash: &[u8], session: SessionId, at: OffsetDateTime) -> RefreshToken {
    RefreshToken {
        hash: hash.to_vec(),
        session,
        generation: 0,
        issued_at: at,
        expires_at: at + Duration::days(14),
    }
}

async fn user(storage: &Storage, name: &str) -> fb_core::identity::User {
    let user = fixtures::user(name, Role::Operator);
    storage.identities.insert_user(&user).await.unwrap();
    user
}

pub async fn sessions_round_trip_with_their_user(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let at = fixtures::instant();
    let session = session_of(&alice, at);
    storage
        .sessions
        .insert_session(&session, &token(b"t0", session.id, at))
        .await
        .unwrap();
    let (read, owner) = storage
        .sessions
        .session_with_user(session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, session);
    assert_eq!(owner, alice);
    assert!(
        storage
            .sessions
            .session_with_user(SessionId(Uuid::now_v7()))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn refresh_tokens_rotate_once_and_reuse_ends_the_session(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let at = fixtures::instant();
    let session = session_of(&alice, at);
    let sessions = &storage.sessions;
    sessions
        .insert_session(&session, &token(b"t0", session.id, at))
        .await
        .unwrap();
    let later = at + Duration::minutes(5);
    // The store sets the next token's session and generation.
    let next = token(b"t1", SessionId(Uuid::nil()), later);
    match sessions
        .rotate_refresh_token(b"t0", &next, later)
        .await
        .unwrap()
    {
        Rotation::Rotated(s) => {
            assert_eq!(s.id, session.id);
            assert_eq!(s.refreshed_at, later);
        }
        other => panic!("expected a rotation, got {other:?}"),
    }
    let after = later + Duration::minutes(1);
    match sessions
        .rotate_refresh_token(b"t1", &token(b"t2", SessionId(Uuid::nil()), after), after)
        .await
        .unwrap()
    {
        Rotation::Rotated(s) => assert_eq!(s.id, session.id),
        other => panic!("the rotated token should work: {other:?}"),
    }
    // t0 again: reuse. The whole session ends, and with it the newest token.
    let again = after + Duration::minutes(1);
    assert_eq!(
        sessions
            .rotate_refresh_token(b"t0", &token(b"t9", SessionId(Uuid::nil()), again), again)
            .await
            .unwrap(),
        Rotation::Reused {
            session: session.id,
            user: alice.id
        }
    );
    let (ended, _) = sessions
        .session_with_user(session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::RefreshTokenReused));
    assert_eq!(ended.ended_at, Some(again));
    assert_eq!(
        sessions
            .rotate_refresh_token(b"t2", &token(b"t3", SessionId(Uuid::nil()), again), again)
            .await
            .unwrap(),
        Rotation::Invalid,
        "the family ended"
    );
    assert_eq!(
        sessions
            .rotate_refresh_token(
                b"unknown",
                &token(b"t4", SessionId(Uuid::nil()), again),
                again
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

pub async fn expired_refresh_tokens_are_invalid_and_stay_unused(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let at = fixtures::instant();
    let session = session_of(&alice, at);
    let sessions = &storage.sessions;
    sessions
        .insert_session(&session, &token(b"t0", session.id, at))
        .await
        .unwrap();
    let late = at + Duration::days(15);
    let next = token(b"t1", SessionId(Uuid::nil()), late);
    assert_eq!(
        sessions
            .rotate_refresh_token(b"t0", &next, late)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // Not counted as used: presenting it again is still just invalid, not a reuse.
    assert_eq!(
        sessions
            .rotate_refresh_token(b"t0", &next, late)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    let (still, _) = sessions
        .session_with_user(session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(still.ended_at.is_none());
}

pub async fn concurrent_refreshes_of_one_token_rotate_once(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let at = fixtures::instant();
    let session = session_of(&alice, at);
    storage
        .sessions
        .insert_session(&session, &token(b"t0", session.id, at))
        .await
        .unwrap();
    let later = at + Duration::minutes(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let sessions = storage.sessions.clone();
        tasks.spawn(async move {
            let next = token(&[b'n', i], SessionId(Uuid::nil()), later);
            sessions
                .rotate_refresh_token(b"t0", &next, later)
                .await
                .unwrap()
        });
    }
    let mut rotated = 0;
    let mut reused = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Rotation::Rotated(_) => rotated += 1,
            Rotation::Reused { .. } => reused += 1,
            Rotation::Invalid => {}
        }
    }
    assert_eq!(rotated, 1, "exactly one presentation wins");
    assert_eq!(reused, 7, "every other one is a reuse");
}

pub async fn sessions_are_listed_newest_first_and_end_once(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let bob = user(storage, "bob").await;
    let at = fixtures::instant();
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let session = session_of(&alice, at);
        storage
            .sessions
            .insert_session(&session, &token(&[b'a', i], session.id, at))
            .await
            .unwrap();
        ids.push(session.id);
    }
    let theirs = session_of(&bob, at);
    storage
        .sessions
        .insert_session(&theirs, &token(b"b", theirs.id, at))
        .await
        .unwrap();
    let now = at + Duration::minutes(1);
    let listed: Vec<_> = storage
        .sessions
        .list_sessions(alice.id, false, now)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, ids.iter().rev().copied().collect::<Vec<_>>());

    let ended = storage
        .sessions
        .end_session(ids[0], EndReason::Logout, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::Logout));
    // Ending it again keeps the first reason and time.
    let again = storage
        .sessions
        .end_session(ids[0], EndReason::Revoked, now + Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.end_reason, again.ended_at),
        (Some(EndReason::Logout), Some(now))
    );
    assert_eq!(
        storage
            .sessions
            .list_sessions(alice.id, false, now)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        storage
            .sessions
            .list_sessions(alice.id, true, now)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        storage
            .sessions
            .end_user_sessions(alice.id, EndReason::UserDisabled, now)
            .await
            .unwrap(),
        2
    );
    assert!(
        storage
            .sessions
            .list_sessions(alice.id, false, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        storage
            .sessions
            .list_sessions(bob.id, false, now)
            .await
            .unwrap()
            .len(),
        1,
        "another user's sessions are untouched"
    );
    assert!(
        storage
            .sessions
            .end_session(SessionId(Uuid::now_v7()), EndReason::Logout, now)
            .await
            .unwrap()
            .is_none()
    );
    storage.sessions.set_session_mfa(theirs.id).await.unwrap();
    let (marked, _) = storage
        .sessions
        .session_with_user(theirs.id)
        .await
        .unwrap()
        .unwrap();
    assert!(marked.mfa);
}

pub async fn totp_enrols_enables_and_never_accepts_a_step_twice(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let mfa = &storage.mfa;
    assert!(!mfa.totp(alice.id).await.unwrap().is_enabled());
    mfa.set_totp_secret(alice.id, b"0123456789abcdefghij")
        .await
        .unwrap();
    let pending = mfa.totp(alice.id).await.unwrap();
    assert_eq!(
        pending.secret.as_deref(),
        Some(&b"0123456789abcdefghij"[..])
    );
    assert!(!pending.is_enabled());
    assert!(
        !storage
            .identities
            .user_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .mfa_enabled
    );

    let at = fixtures::instant();
    mfa.enable_totp(alice.id, at, &[b"c1".to_vec(), b"c2".to_vec()])
        .await
        .unwrap();
    let enabled = mfa.totp(alice.id).await.unwrap();
    assert_eq!(enabled.enabled_at, Some(at));
    assert!(
        storage
            .identities
            .user_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .mfa_enabled
    );

    assert!(mfa.accept_totp_step(alice.id, 100).await.unwrap());
    assert!(
        !mfa.accept_totp_step(alice.id, 100).await.unwrap(),
        "replay"
    );
    assert!(!mfa.accept_totp_step(alice.id, 99).await.unwrap(), "older");
    assert!(mfa.accept_totp_step(alice.id, 101).await.unwrap());

    assert_eq!(mfa.recovery_codes_left(alice.id).await.unwrap(), 2);
    assert!(mfa.use_recovery_code(alice.id, b"c1", at).await.unwrap());
    assert!(
        !mfa.use_recovery_code(alice.id, b"c1", at).await.unwrap(),
        "used"
    );
    assert!(!mfa.use_recovery_code(alice.id, b"zz", at).await.unwrap());
    assert_eq!(mfa.recovery_codes_left(alice.id).await.unwrap(), 1);
    mfa.replace_recovery_codes(alice.id, &[b"d1".to_vec()], at)
        .await
        .unwrap();
    assert!(!mfa.use_recovery_code(alice.id, b"c2", at).await.unwrap());
    assert!(mfa.use_recovery_code(alice.id, b"d1", at).await.unwrap());

    mfa.clear_totp(alice.id).await.unwrap();
    let cleared = mfa.totp(alice.id).await.unwrap();
    assert!(cleared.secret.is_none() && cleared.enabled_at.is_none());
    assert_eq!(mfa.recovery_codes_left(alice.id).await.unwrap(), 0);
}

pub async fn a_users_api_keys_are_revoked_together(storage: &Storage) {
    let alice = user(storage, "alice").await;
    let bob = user(storage, "bob").await;
    let ids = &storage.identities;
    ids.insert_api_key(&fixtures::api_key("ka", Role::Operator, Some(alice.id)))
        .await
        .unwrap();
    ids.insert_api_key(&fixtures::api_key("kb", Role::Operator, Some(alice.id)))
        .await
        .unwrap();
    ids.insert_api_key(&fixtures::api_key("kc", Role::Operator, Some(bob.id)))
        .await
        .unwrap();
    let at = fixtures::instant();
    assert_eq!(
        ids.revoke_api_keys_created_by(alice.id, at).await.unwrap(),
        2
    );
    assert_eq!(
        ids.revoke_api_keys_created_by(alice.id, at).await.unwrap(),
        0
    );
    let bobs = ids.api_key_by_prefix("kc").await.unwrap().unwrap();
    assert!(bobs.revoked_at.is_none());
    let alices = ids.api_key_by_prefix("ka").await.unwrap().unwrap();
    assert_eq!(alices.revoked_at, Some(at));
}

pub async fn secrets_are_read_and_replaced_together(storage: &Storage) {
    assert!(storage.secrets.secret("rotating").await.unwrap().is_none());
    storage
        .secrets
        .put_secrets(&[("rotating", b"one"), ("rotating.previous", b"zero")])
        .await
        .unwrap();
    storage
        .secrets
        .put_secrets(&[("rotating", b"two"), ("rotating.previous", b"one")])
        .await
        .unwrap();
    assert_eq!(
        storage.secrets.secret("rotating").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        storage
            .secrets
            .secret("rotating.previous")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"one"[..])
    );
}
