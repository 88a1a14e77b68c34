use time::Duration;

use fb_core::identity::{ApiKeyId, Role, SiteScope, UserId};
use fb_core::ports::{Storage, StoreError};

use crate::fixtures::{api_key, instant, user};

pub async fn users_round_trip(storage: &Storage) {
    let ids = &storage.identities;
    let mut alice = user("alice", Role::Operator);
    alice.must_change_password = true;
    ids.insert_user(&alice).await.unwrap();

    assert_eq!(ids.user_by_id(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(
        ids.user_by_username("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(ids.count_users().await.unwrap(), 1);
}

pub async fn usernames_are_unique(storage: &Storage) {
    let ids = &storage.identities;
    ids.insert_user(&user("bob", Role::Viewer)).await.unwrap();
    let err = ids
        .insert_user(&user("bob", Role::Admin))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                constraint: "username"
            }
        ),
        "expected a username conflict, got {err:?}"
    );
    assert_eq!(ids.count_users().await.unwrap(), 1);
}

pub async fn user_lookups_miss_cleanly(storage: &Storage) {
    let ids = &storage.identities;
    assert_eq!(
        ids.user_by_id(UserId(uuid::Uuid::now_v7())).await.unwrap(),
        None
    );
    assert_eq!(ids.user_by_username("nobody").await.unwrap(), None);
    assert_eq!(ids.count_users().await.unwrap(), 0);
    assert!(ids.list_users().await.unwrap().is_empty());
    let missing = ids
        .set_user_disabled(UserId(uuid::Uuid::now_v7()), true, instant())
        .await;
    assert_eq!(missing.unwrap(), None);
    let missing = ids
        .set_user_password(UserId(uuid::Uuid::now_v7()), "h", instant())
        .await;
    assert!(!missing.unwrap());
}

pub async fn users_are_listed_by_username(storage: &Storage) {
    let ids = &storage.identities;
    for name in ["carol", "alice", "bob"] {
        ids.insert_user(&user(name, Role::Viewer)).await.unwrap();
    }
    let names: Vec<_> = ids
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(ids.count_users().await.unwrap(), 3);
}

pub async fn disable_and_enable_user(storage: &Storage) {
    let ids = &storage.identities;
    let dave = user("dave", Role::Supervisor);
    ids.insert_user(&dave).await.unwrap();
    let later = instant() + Duration::minutes(5);

    let disabled = ids
        .set_user_disabled(dave.id, true, later)
        .await
        .unwrap()
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.updated_at, later);
    assert_eq!(disabled.created_at, dave.created_at);
    assert!(ids.user_by_id(dave.id).await.unwrap().unwrap().disabled);

    let enabled = ids
        .set_user_disabled(dave.id, false, later)
        .await
        .unwrap()
        .unwrap();
    assert!(!enabled.disabled);
}

pub async fn password_change_clears_flag(storage: &Storage) {
    let ids = &storage.identities;
    let mut erin = user("erin", Role::Admin);
    erin.must_change_password = true;
    ids.insert_user(&erin).await.unwrap();
    let later = instant() + Duration::hours(1);
    assert!(
        ids.set_user_password(erin.id, "$argon2id$new", later)
            .await
            .unwrap()
    );
    let stored = ids.user_by_id(erin.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "$argon2id$new");
    assert!(!stored.must_change_password);
    assert_eq!(stored.updated_at, later);
}

pub async fn api_keys_round_trip(storage: &Storage) {
    let ids = &storage.identities;
    let owner = user("owner", Role::Admin);
    ids.insert_user(&owner).await.unwrap();
    let mut key = api_key("0123456789ab", Role::Operator, Some(owner.id));
    key.expires_at = Some(instant() + Duration::days(30));
    ids.insert_api_key(&key).await.unwrap();

    assert_eq!(
        ids.api_key_by_prefix("0123456789ab").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(ids.api_key_by_id(key.id).await.unwrap(), Some(key.clone()));
    assert_eq!(ids.api_key_by_prefix("ffffffffffff").await.unwrap(), None);
    assert_eq!(
        ids.api_key_by_id(ApiKeyId(uuid::Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );

    // A key need not have a creating user (created from the CLI).
    let system_key = api_key("aaaaaaaaaaaa", Role::Viewer, None);
    ids.insert_api_key(&system_key).await.unwrap();
    assert_eq!(
        ids.api_key_by_id(system_key.id).await.unwrap(),
        Some(system_key)
    );
}

pub async fn api_key_prefixes_are_unique(storage: &Storage) {
    let ids = &storage.identities;
    ids.insert_api_key(&api_key("bbbbbbbbbbbb", Role::Viewer, None))
        .await
        .unwrap();
    let err = ids
        .insert_api_key(&api_key("bbbbbbbbbbbb", Role::Viewer, None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                constraint: "api_key_prefix"
            }
        ),
        "expected a prefix conflict, got {err:?}"
    );
}

pub async fn api_keys_are_listed_newest_first(storage: &Storage) {
    let ids = &storage.identities;
    let first = api_key("111111111111", Role::Viewer, None);
    let second = api_key("222222222222", Role::Viewer, None);
    ids.insert_api_key(&first).await.unwrap();
    ids.insert_api_key(&second).await.unwrap();
    let listed: Vec<_> = ids
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, [second.id, first.id]);
}

pub async fn revoke_keeps_first_revocation_time(storage: &Storage) {
    let ids = &storage.identities;
    let key = api_key("cccccccccccc", Role::Viewer, None);
    ids.insert_api_key(&key).await.unwrap();
    let t1 = instant() + Duration::minutes(1);
    let t2 = instant() + Duration::minutes(2);
    let revoked = ids.revoke_api_key(key.id, t1).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t1));
    let again = ids.revoke_api_key(key.id, t2).await.unwrap().unwrap();
    assert_eq!(
        again.revoked_at,
        Some(t1),
        "revocation time is not overwritten"
    );
    assert_eq!(
        ids.revoke_api_key(ApiKeyId(uuid::Uuid::now_v7()), t2)
            .await
            .unwrap(),
        None
    );
}

pub async fn touch_records_last_use(storage: &Storage) {
    let ids = &storage.identities;
    let key = api_key("dddddddddddd", Role::Viewer, None);
    ids.insert_api_key(&key).await.unwrap();
    let used = instant() + Duration::seconds(90);
    ids.touch_api_key(key.id, used).await.unwrap();
    assert_eq!(
        ids.api_key_by_id(key.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(used)
    );
}

pub async fn last_admin_cannot_be_disabled_even_concurrently(storage: &Storage) {
    let ids = &storage.identities;
    let a = user("admin-a", Role::Admin);
    let b = user("admin-b", Role::Admin);
    ids.insert_user(&a).await.unwrap();
    ids.insert_user(&b).await.unwrap();
    // Both disables race; whatever the interleaving, one admin must stay active.
    let (ra, rb) = tokio::join!(
        ids.set_user_disabled(a.id, true, instant()),
        ids.set_user_disabled(b.id, true, instant())
    );
    let disabled = [ra.unwrap(), rb.unwrap()].into_iter().flatten().count();
    assert_eq!(disabled, 1, "exactly one of two admins can be disabled");
    let active = ids
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| !u.disabled)
        .count();
    assert_eq!(active, 1);
    // Non-admins are unaffected by the rule, and enabling always works.
    let viewer = user("viewer", Role::Viewer);
    ids.insert_user(&viewer).await.unwrap();
    assert!(
        ids.set_user_disabled(viewer.id, true, instant())
            .await
            .unwrap()
            .is_some()
    );
    let still_disabled = if ids.user_by_id(a.id).await.unwrap().unwrap().disabled {
        a.id
    } else {
        b.id
    };
    assert!(
        ids.set_user_disabled(still_disabled, false, instant())
            .await
            .unwrap()
            .is_some()
    );
}

fn sites(names: &[&str]) -> SiteScope {
    SiteScope::named("sites", names).unwrap()
}

pub async fn users_and_keys_keep_their_sites(storage: &Storage) {
    let ids = &storage.identities;
    let mut scoped = user("site-lead", Role::Supervisor);
    scoped.sites = sites(&["plant-b", "plant-a", "all"]);
    ids.insert_user(&scoped).await.unwrap();
    let everywhere = user("roamer", Role::Viewer);
    ids.insert_user(&everywhere).await.unwrap();
    assert_eq!(
        ids.user_by_id(scoped.id).await.unwrap(),
        Some(scoped.clone())
    );
    assert_eq!(
        ids.user_by_username("roamer").await.unwrap().unwrap().sites,
        SiteScope::All
    );
    let listed: Vec<_> = ids
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.username, u.sites))
        .collect();
    assert_eq!(
        listed,
        [
            ("roamer".to_owned(), SiteScope::All),
            ("site-lead".to_owned(), scoped.sites.clone())
        ]
    );

    let mut key = api_key("eeeeeeeeeeee", Role::Operator, Some(scoped.id));
    key.sites = sites(&["plant-a"]);
    ids.insert_api_key(&key).await.unwrap();
    assert_eq!(
        ids.api_key_by_prefix("eeeeeeeeeeee").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(ids.list_api_keys().await.unwrap()[0].sites, key.sites);
}

pub async fn user_access_changes_but_an_admin_of_all_sites_stays(storage: &Storage) {
    let ids = &storage.identities;
    let later = instant() + Duration::minutes(3);
    let a = user("admin-a", Role::Admin);
    let b = user("admin-b", Role::Admin);
    let mut scoped_admin = user("admin-north", Role::Admin);
    scoped_admin.sites = sites(&["north"]);
    let operator = user("operator", Role::Operator);
    for u in [&a, &b, &scoped_admin, &operator] {
        ids.insert_user(u).await.unwrap();
    }

    let changed = ids
        .update_user_access(
            operator.id,
            Role::Supervisor,
            &sites(&["north", "south"]),
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.role, Role::Supervisor);
    assert_eq!(changed.sites, sites(&["north", "south"]));
    assert_eq!(changed.updated_at, later);
    assert_eq!(ids.user_by_id(operator.id).await.unwrap(), Some(changed));

    // Demoting both admins of all sites at once: whatever the interleaving, one stays. An
    // admin of some sites does not count.
    let north = sites(&["north"]);
    let (ra, rb) = tokio::join!(
        ids.update_user_access(a.id, Role::Viewer, &SiteScope::All, later),
        ids.update_user_access(b.id, Role::Admin, &north, later)
    );
    let changed = [ra.unwrap(), rb.unwrap()].into_iter().flatten().count();
    assert_eq!(
        changed, 1,
        "exactly one of two admins of all sites can lose that"
    );
    let last = if ids.user_by_id(a.id).await.unwrap().unwrap().role == Role::Admin {
        a.id
    } else {
        b.id
    };
    for (role, scope) in [
        (Role::Supervisor, SiteScope::All),
        (Role::Admin, sites(&["north"])),
    ] {
        assert_eq!(
            ids.update_user_access(last, role, &scope, later)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        ids.set_user_disabled(last, true, later).await.unwrap(),
        None
    );
    // Keeping the last one an admin of all sites is no demotion.
    assert!(
        ids.update_user_access(last, Role::Admin, &SiteScope::All, later)
            .await
            .unwrap()
            .is_some()
    );
    // The scoped admin is not protected by the rule.
    assert!(
        ids.set_user_disabled(scoped_admin.id, true, later)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        ids.update_user_access(
            UserId(uuid::Uuid::now_v7()),
            Role::Viewer,
            &SiteScope::All,
            later
        )
        .await
        .unwrap(),
        None
    );
}
