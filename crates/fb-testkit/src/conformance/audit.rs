use time::Duration;

use fb_core::audit::{AuditHead, ChainHash, Outcome, Verifier, verify};
use fb_core::ports::{AuditFilter, Storage};

use crate::fixtures::{audit_entry as entry, instant};

fn all() -> AuditFilter {
    AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    }
}

pub async fn audit_chain_starts_at_genesis_and_round_trips(storage: &Storage) {
    let audit = &storage.audit;
    assert_eq!(audit.audit_head().await.unwrap(), Some(AuditHead::EMPTY));
    assert!(audit.scan_audit(0, 10).await.unwrap().is_empty());
    assert!(audit.list_audit(&all()).await.unwrap().is_empty());

    let mut first = entry("user:zoë", "user.disable", None, Outcome::Failure);
    // Sub-microsecond digits are dropped by every store alike, before hashing.
    first.at += Duration::nanoseconds(789);
    first.details.insert("error".into(), "last_admin".into());
    first.details.insert("note".into(), "Ünïcode — ok".into());
    let r1 = audit.append_audit(&first).await.unwrap();
    assert_eq!(r1.seq, 1);
    assert_eq!(r1.prev_hash, ChainHash::GENESIS);
    assert_eq!(r1.entry, first.clone().normalized());
    assert!(r1.is_intact());
    let r2 = audit
        .append_audit(&entry(
            "anonymous",
            "auth.login",
            Some("user:bob"),
            Outcome::Denied,
        ))
        .await
        .unwrap();
    let mut third = entry("system", "user.create", Some(""), Outcome::Success);
    third.details.clear();
    let r3 = audit.append_audit(&third).await.unwrap();
    assert_eq!((r2.seq, r3.seq), (2, 3));
    assert_eq!(r2.prev_hash, r1.hash);
    assert_eq!(r3.prev_hash, r2.hash);
    assert_eq!(r3.entry.target.as_deref(), Some(""), "empty is not absent");

    let head = audit.audit_head().await.unwrap();
    assert_eq!(head, Some(r3.as_head()));
    let records = [r1.clone(), r2.clone(), r3.clone()];
    assert_eq!(
        audit.list_audit(&all()).await.unwrap(),
        records,
        "read back exactly"
    );
    assert_eq!(
        audit.scan_audit(0, 10).await.unwrap(),
        records.iter().cloned().map(Ok).collect::<Vec<_>>()
    );
    assert_eq!(audit.scan_audit(1, 1).await.unwrap(), [Ok(r2)]);
    assert_eq!(verify(&records, head), []);
}

pub async fn audit_lists_with_filters_and_pages_both_ways(storage: &Storage) {
    let audit = &storage.audit;
    let specs = [
        (
            "user:alice",
            "user.disable",
            Some("user:bob"),
            Outcome::Success,
        ),
        (
            "user:alice",
            "machine.create",
            Some("machine:p1"),
            Outcome::Failure,
        ),
        ("anonymous", "auth.login", Some("user:bob"), Outcome::Denied),
        (
            "user:carol",
            "user.disable",
            Some("user:bob"),
            Outcome::Denied,
        ),
        (
            "user:alice",
            "user.enable",
            Some("user:bob"),
            Outcome::Success,
        ),
        ("cli:root", "api_key.create", None, Outcome::Success),
    ];
    let mut records = Vec::new();
    for (i, (actor, action, target, outcome)) in specs.into_iter().enumerate() {
        let mut e = entry(actor, action, target, outcome);
        e.at = instant() + Duration::minutes(i as i64);
        records.push(audit.append_audit(&e).await.unwrap());
    }
    let seqs = |filter: AuditFilter| {
        let audit = audit.clone();
        async move {
            audit
                .list_audit(&filter)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(seqs(all()).await, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        seqs(AuditFilter {
            actor: text("user:alice"),
            ..all()
        })
        .await,
        [1, 2, 5]
    );
    assert_eq!(
        seqs(AuditFilter {
            action: text("user.disable"),
            ..all()
        })
        .await,
        [1, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            target: text("user:bob"),
            outcome: Some(Outcome::Denied),
            ..all()
        })
        .await,
        [3, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            outcome: Some(Outcome::Success),
            ..all()
        })
        .await,
        [1, 5, 6]
    );
    // Time: from inclusive, to exclusive.
    assert_eq!(
        seqs(AuditFilter {
            from: Some(instant() + Duration::minutes(1)),
            to: Some(instant() + Duration::minutes(3)),
            ..all()
        })
        .await,
        [2, 3]
    );
    // Oldest first from a cursor, and newest first below one.
    assert_eq!(
        seqs(AuditFilter {
            after: Some(2),
            limit: 2,
            ..all()
        })
        .await,
        [3, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            newest_first: true,
            limit: 2,
            ..all()
        })
        .await,
        [6, 5]
    );
    assert_eq!(
        seqs(AuditFilter {
            newest_first: true,
            before: Some(5),
            actor: text("user:alice"),
            ..all()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        seqs(AuditFilter {
            after: Some(1),
            before: Some(4),
            ..all()
        })
        .await,
        [2, 3]
    );
    assert_eq!(
        audit
            .list_audit(&AuditFilter {
                action: text("machine.create"),
                ..all()
            })
            .await
            .unwrap(),
        [records[1].clone()]
    );
}

pub async fn concurrent_audit_appends_form_one_chain(storage: &Storage) {
    const WRITERS: u64 = 24;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let audit = storage.audit.clone();
        tasks.spawn(async move {
            let e = entry(&format!("user:w{i}"), "user.create", None, Outcome::Success);
            audit.append_audit(&e).await.unwrap().seq
        });
    }
    let mut seqs = tasks.join_all().await;
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=WRITERS).collect::<Vec<_>>(),
        "gapless, no seq twice"
    );

    let head = storage.audit.audit_head().await.unwrap();
    assert_eq!(head.map(|h| h.seq), Some(WRITERS));
    let mut verifier = Verifier::new(head, &[]);
    let mut after = 0;
    loop {
        let page = storage.audit.scan_audit(after, 5).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.as_ref().unwrap().seq;
        for row in page {
            verifier.feed(row);
        }
    }
    assert_eq!(verifier.checked(), WRITERS);
    assert_eq!(verifier.finish(head), [], "one chain, every link intact");
}
