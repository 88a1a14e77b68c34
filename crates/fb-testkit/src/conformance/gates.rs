use std::collections::HashSet;

use time::Duration;
use uuid::Uuid;

use fb_core::gates::{
    Action, ActionKind, AgentDecision, Answer, ApprovalItem, ApprovalStatus, DecisionId,
    DecisionOutcome, Gates, HoldReason,
};
use fb_core::identity::SiteScope;
use fb_core::plant::MachineId;
use fb_core::ports::{ApprovalFilter, DecisionFilter, Storage, StoreError};

use crate::fixtures::instant;

fn item(kind: ActionKind, site: &str, minutes: i64) -> ApprovalItem {
    let gates = Gates::default();
    let action = Action {
        kind,
        site: site.to_owned(),
        machine: Some(MachineId("press-01".to_owned())),
        summary: "Order 4 bearings".to_owned(),
        payload: r#"{"part":"6205","quantity":4}"#.to_owned(),
        confidence: 0.5,
        amount_minor: Some(41_200),
        command: (kind == ActionKind::MachineCommand).then(|| "shutdown".to_owned()),
        requested_by: "procurement".to_owned(),
    };
    ApprovalItem::held(
        &action,
        gates.gate(kind),
        &[HoldReason::LowConfidence {
            confidence: 0.5,
            threshold: 0.8,
        }],
        Some(DecisionId::new()),
        instant() + Duration::minutes(minutes),
    )
}

fn answer(status: ApprovalStatus, minutes: i64) -> Answer {
    Answer {
        status,
        by: "user:sam".to_owned(),
        at: instant() + Duration::minutes(minutes),
        reason: (status == ApprovalStatus::Rejected).then(|| "too dear".to_owned()),
    }
}

fn decision(agent: &str, site: &str, minutes: i64) -> AgentDecision {
    AgentDecision {
        id: DecisionId::new(),
        agent: agent.to_owned(),
        site: site.to_owned(),
        machine: Some(MachineId("press-01".to_owned())),
        inputs: r#"{"ticket":"t-1"}"#.to_owned(),
        action: "purchase_order".to_owned(),
        reason: "bearing worn".to_owned(),
        confidence: 0.75,
        outcome: DecisionOutcome::Held,
        approval: None,
        ticket: Some(Uuid::now_v7()),
        alert: None,
        at: instant() + Duration::minutes(minutes),
    }
}

pub async fn approvals_round_trip_and_are_answered_once(storage: &Storage) {
    let store = &storage.approvals;
    let a = item(ActionKind::PurchaseOrder, "plant-a", 0);
    store.insert_approval(&a).await.unwrap();
    assert_eq!(store.approval(a.id).await.unwrap(), Some(a.clone()));
    assert!(matches!(
        store.insert_approval(&a).await,
        Err(StoreError::Conflict {
            constraint: "approval_id"
        })
    ));

    let approved = store
        .answer_approval(a.id, &answer(ApprovalStatus::Approved, 5))
        .await
        .unwrap()
        .expect("a pending item is answered");
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.answer, Some(answer(ApprovalStatus::Approved, 5)));
    assert_eq!(store.approval(a.id).await.unwrap(), Some(approved.clone()));
    // A second answer of any kind changes nothing.
    for status in [ApprovalStatus::Rejected, ApprovalStatus::Approved] {
        assert_eq!(
            store
                .answer_approval(a.id, &answer(status, 6))
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(store.approval(a.id).await.unwrap(), Some(approved));
    // An unknown item is not answered.
    let unknown = item(ActionKind::PurchaseOrder, "plant-a", 0);
    assert_eq!(store.approval(unknown.id).await.unwrap(), None);
    assert_eq!(
        store
            .answer_approval(unknown.id, &answer(ApprovalStatus::Approved, 1))
            .await
            .unwrap(),
        None
    );
}

pub async fn approvals_expire_only_once_their_time_is_up(storage: &Storage) {
    let store = &storage.approvals;
    let a = item(ActionKind::MachineCommand, "plant-a", 0);
    store.insert_approval(&a).await.unwrap();
    let timeout = a.expires_at - a.created_at;
    let minutes = timeout.whole_minutes();
    // Too early to expire; too late to approve.
    assert_eq!(
        store
            .answer_approval(a.id, &answer(ApprovalStatus::Expired, minutes - 1))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .due_approvals(a.expires_at - Duration::MICROSECOND, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .answer_approval(a.id, &answer(ApprovalStatus::Approved, minutes))
            .await
            .unwrap(),
        None
    );
    let due = store.due_approvals(a.expires_at, 10).await.unwrap();
    assert_eq!(due, vec![a.clone()]);
    let expired = store
        .answer_approval(
            a.id,
            &Answer {
                by: "system".to_owned(),
                ..answer(ApprovalStatus::Expired, minutes)
            },
        )
        .await
        .unwrap()
        .expect("expires at its time");
    assert_eq!(expired.status, ApprovalStatus::Expired);
    assert!(
        store
            .due_approvals(a.expires_at, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_answers_take_an_approval_once(storage: &Storage) {
    let a = item(ActionKind::PurchaseOrder, "plant-a", 0);
    storage.approvals.insert_approval(&a).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = storage.approvals.clone();
        let status = if i % 2 == 0 {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        tasks.push(tokio::spawn(async move {
            store
                .answer_approval(a.id, &answer(status, 1))
                .await
                .unwrap()
        }));
    }
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(taken, 1);
}

pub async fn approvals_are_listed_newest_first_with_filters(storage: &Storage) {
    let store = &storage.approvals;
    let a = item(ActionKind::PurchaseOrder, "plant-a", 0);
    let b = item(ActionKind::MachineCommand, "plant-a", 1);
    let c = item(ActionKind::PurchaseOrder, "plant-b", 2);
    for x in [&a, &b, &c] {
        store.insert_approval(x).await.unwrap();
    }
    store
        .answer_approval(a.id, &answer(ApprovalStatus::Rejected, 3))
        .await
        .unwrap()
        .unwrap();
    let ids = |items: Vec<ApprovalItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let all = ApprovalFilter::new(SiteScope::All, 10);
    assert_eq!(
        ids(store.list_approvals(&all).await.unwrap()),
        [c.id, b.id, a.id]
    );
    let pending = ApprovalFilter {
        status: Some(ApprovalStatus::Pending),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_approvals(&pending).await.unwrap()),
        [c.id, b.id]
    );
    let orders = ApprovalFilter {
        kind: Some(ActionKind::PurchaseOrder),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_approvals(&orders).await.unwrap()),
        [c.id, a.id]
    );
    let site_a = ApprovalFilter::new(SiteScope::Sites(["plant-a".to_owned()].into()), 10);
    assert_eq!(
        ids(store.list_approvals(&site_a).await.unwrap()),
        [b.id, a.id]
    );
    let none = ApprovalFilter::new(SiteScope::Sites(Default::default()), 10);
    assert!(store.list_approvals(&none).await.unwrap().is_empty());
    let page = ApprovalFilter {
        before: Some(c.id),
        limit: 1,
        ..all
    };
    assert_eq!(ids(store.list_approvals(&page).await.unwrap()), [b.id]);
}

pub async fn decisions_round_trip_and_list_with_filters(storage: &Storage) {
    let store = &storage.decisions;
    let d1 = decision("procurement", "plant-a", 0);
    let mut d2 = decision("energy", "plant-a", 10);
    d2.machine = None;
    d2.ticket = None;
    d2.outcome = DecisionOutcome::Executed;
    let d3 = decision("procurement", "plant-b", 20);
    for d in [&d1, &d2, &d3] {
        store.insert_decision(d).await.unwrap();
    }
    assert_eq!(store.decision(d2.id).await.unwrap(), Some(d2.clone()));
    assert!(matches!(
        store.insert_decision(&d1).await,
        Err(StoreError::Conflict {
            constraint: "decision_id"
        })
    ));
    let ids = |ds: Vec<AgentDecision>| ds.into_iter().map(|d| d.id).collect::<HashSet<_>>();
    let ordered = |ds: Vec<AgentDecision>| ds.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = DecisionFilter::new(SiteScope::All, 10);
    assert_eq!(
        ordered(store.list_decisions(&all).await.unwrap()),
        [d3.id, d2.id, d1.id]
    );
    let procurement = DecisionFilter {
        agent: Some("procurement".to_owned()),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_decisions(&procurement).await.unwrap()),
        [d1.id, d3.id].into()
    );
    let window = DecisionFilter {
        from: Some(instant() + Duration::minutes(10)),
        to: Some(instant() + Duration::minutes(20)),
        ..all.clone()
    };
    assert_eq!(
        ordered(store.list_decisions(&window).await.unwrap()),
        [d2.id]
    );
    let site_b = DecisionFilter::new(SiteScope::Sites(["plant-b".to_owned()].into()), 10);
    assert_eq!(
        ordered(store.list_decisions(&site_b).await.unwrap()),
        [d3.id]
    );
    let page = DecisionFilter {
        before: Some(d3.id),
        limit: 1,
        ..all
    };
    assert_eq!(ordered(store.list_decisions(&page).await.unwrap()), [d2.id]);
}
