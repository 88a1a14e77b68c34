use std::sync::Mutex;

use time::Duration;

use fb_core::events::SubjectFilter;
use fb_core::identity::{Role, SiteScope, Subject, UserId};
use fb_core::plant::MachineId;
use fb_core::ports::{AuditFilter, ConsumerName, ConsumerSpec, EventConsumer, Storage};
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;

use super::*;
use crate::bus::InProcessBus;

/// Records every action it is asked to run.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(ApprovalId, Action)>>,
    declined: Mutex<Vec<(ApprovalId, ApprovalStatus)>>,
}

#[async_trait]
impl GatedExecutor for Recorder {
    async fn execute(&self, item: ApprovalId, action: &Action) -> Result<String, String> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((item, action.clone()));
        Ok("order placed".to_owned())
    }

    async fn declined(&self, item: &ApprovalItem) -> Result<String, String> {
        self.declined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((item.id, item.status));
        Ok("order closed".to_owned())
    }
}

impl Recorder {
    fn declined(&self) -> Vec<(ApprovalId, ApprovalStatus)> {
        self.declined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn runs(&self) -> Vec<(ApprovalId, Action)> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Fixture {
    service: Service,
    storage: Storage,
    clock: Arc<FakeClock>,
    recorder: Arc<Recorder>,
    events: Box<dyn EventConsumer>,
}

async fn fixture() -> Fixture {
    let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
    let clock = Arc::new(FakeClock::new());
    let bus = Arc::new(InProcessBus::new(1_000));
    let events = bus
        .consumer(&ConsumerSpec {
            name: ConsumerName::parse("name", "test").unwrap(),
            filter: SubjectFilter::parse("filter", ">").unwrap(),
            ack_wait: std::time::Duration::from_secs(600),
            max_deliver: 1,
        })
        .await
        .unwrap();
    let service = Service::new(
        storage.approvals.clone(),
        storage.decisions.clone(),
        Gates::default(),
        Arc::new(audit::Service::new(storage.audit.clone(), clock.clone())),
        clock.clone(),
    )
    .with_bus(bus.clone());
    let recorder = Arc::new(Recorder::default());
    service.register_executor(ActionKind::PurchaseOrder, recorder.clone());
    Fixture {
        service,
        storage,
        clock,
        recorder,
        events,
    }
}

fn person(name: &str, role: Role, sites: SiteScope) -> Principal {
    Principal {
        role,
        sites,
        subject: Subject::User {
            id: UserId(Uuid::now_v7()),
            username: name.into(),
            session: None,
        },
        mfa_enrolment_pending: false,
    }
}

fn supervisor() -> Principal {
    person("sam", Role::Supervisor, SiteScope::All)
}

fn operator() -> Principal {
    person("otto", Role::Operator, SiteScope::All)
}

fn order(confidence: f64, amount_minor: i64) -> Submission {
    Submission {
        action: Action {
            kind: ActionKind::PurchaseOrder,
            site: "plant-a".to_owned(),
            machine: Some(MachineId("press-01".to_owned())),
            summary: "Order 4 bearings SKF-6205".to_owned(),
            payload: r#"{"part":"6205","quantity":4}"#.to_owned(),
            confidence,
            amount_minor: Some(amount_minor),
            command: None,
            requested_by: "procurement".to_owned(),
        },
        inputs: r#"{"ticket":"t-1","stock":0}"#.to_owned(),
        reason: "bearing worn, none in stock".to_owned(),
        ticket: Some(Uuid::now_v7()),
        alert: None,
    }
}

async fn held(f: &Fixture) -> ApprovalItem {
    match f.service.submit(order(0.5, 41_200)).await.unwrap() {
        Submitted::Held { item, .. } => item,
        other => panic!("held expected, got {other:?}"),
    }
}

/// The first two tokens of the subjects published so far, in order.
async fn published(f: &mut Fixture) -> Vec<String> {
    let mut subjects = Vec::new();
    while let Some(delivery) = f.events.next(std::time::Duration::ZERO).await.unwrap() {
        let subject = delivery.envelope().subject().to_string();
        subjects.push(subject.split('.').take(2).collect::<Vec<_>>().join("."));
        delivery.ack().await.unwrap();
    }
    subjects
}

async fn audit_actions(storage: &Storage) -> Vec<(String, String, String)> {
    storage
        .audit
        .list_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.entry.actor.clone(),
                r.entry.action.clone(),
                r.entry.outcome.as_str().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_confident_order_within_the_limit_proceeds_and_is_logged() {
    let mut f = fixture().await;
    let Submitted::Proceed { decision } = f.service.submit(order(0.95, 10_000)).await.unwrap()
    else {
        panic!("proceed expected");
    };
    assert_eq!(decision.outcome, DecisionOutcome::Executed);
    let log = f
        .service
        .decisions(&operator(), &DecisionFilter::new(SiteScope::All, 10))
        .await
        .unwrap();
    assert_eq!(log, vec![decision]);
    let queue = f
        .service
        .list(&operator(), &ApprovalFilter::new(SiteScope::All, 10))
        .await
        .unwrap();
    assert!(queue.is_empty());
    // The caller executes a proceeding action; the executor is for approvals only.
    assert!(f.recorder.runs().is_empty());
    assert_eq!(published(&mut f).await, ["agents.decided", "gates.passed"]);
}

#[tokio::test]
async fn a_held_order_waits_in_the_queue_with_its_reasons() {
    let f = fixture().await;
    let Submitted::Held { item, decision } = f.service.submit(order(0.5, 900_000)).await.unwrap()
    else {
        panic!("held expected");
    };
    assert_eq!(item.status, ApprovalStatus::Pending);
    assert_eq!(item.reasons.len(), 2);
    assert!(item.reasons[0].starts_with("low_confidence"));
    assert!(item.reasons[1].starts_with("amount_over_limit"));
    assert_eq!(item.decision, Some(decision.id));
    assert_eq!(decision.outcome, DecisionOutcome::Held);
    assert_eq!(decision.approval, Some(item.id));
    assert_eq!(f.service.get(&operator(), item.id).await.unwrap(), item);
    assert!(f.recorder.runs().is_empty());
    assert_eq!(
        audit_actions(&f.storage).await,
        [(
            "procurement".to_owned(),
            "approval.hold".to_owned(),
            "success".to_owned()
        )]
    );
}

#[tokio::test]
async fn bad_actions_are_refused_naming_the_field() {
    let f = fixture().await;
    let mut s = order(1.5, 1);
    s.action.payload = "not json".to_owned();
    let Err(Error::Validation(errors)) = f.service.submit(s).await else {
        panic!("validation error expected");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["confidence", "payload"]);
}

#[tokio::test]
async fn an_operator_cannot_approve_and_the_item_stays_pending() {
    let f = fixture().await;
    let item = held(&f).await;
    let err = f
        .service
        .approve(&operator(), item.id, None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::PermissionDenied(Permission::OrdersApprove)
    ));
    assert_eq!(err.code(), Code::permission_denied);
    let stored = f.service.get(&operator(), item.id).await.unwrap();
    assert_eq!(stored.status, ApprovalStatus::Pending);
    assert!(f.recorder.runs().is_empty());
    let audit = audit_actions(&f.storage).await;
    assert!(audit.contains(&(
        "user:otto".to_owned(),
        "approval.approve".to_owned(),
        "denied".to_owned()
    )));
}

#[tokio::test]
async fn approval_runs_the_executor_once_and_a_second_answer_is_refused() {
    let mut f = fixture().await;
    let item = held(&f).await;
    let approved = f
        .service
        .approve(&supervisor(), item.id, Some("supplier known".to_owned()))
        .await
        .unwrap();
    assert_eq!(approved.item.status, ApprovalStatus::Approved);
    assert_eq!(
        approved.execution,
        Execution::Executed("order placed".to_owned())
    );
    let answer = approved.item.answer.clone().unwrap();
    assert_eq!(answer.by, "user:sam");
    assert_eq!(answer.reason.as_deref(), Some("supplier known"));
    assert_eq!(f.recorder.runs(), vec![(item.id, item.action())]);
    assert_eq!(
        published(&mut f).await,
        [
            "agents.decided",
            "gates.held",
            "gates.approved",
            "agents.decided"
        ]
    );

    for second in [
        f.service
            .approve(&supervisor(), item.id, None)
            .await
            .map(|_| ()),
        f.service
            .reject(&supervisor(), item.id, Some("late".to_owned()))
            .await
            .map(|_| ()),
    ] {
        let err = second.unwrap_err();
        assert!(matches!(
            err,
            Error::AlreadyDecided(ApprovalStatus::Approved)
        ));
        assert_eq!(err.code(), Code::approval_already_decided);
    }
    assert_eq!(f.recorder.runs().len(), 1);

    let log = f
        .service
        .decisions(
            &person("vera", Role::Viewer, SiteScope::All),
            &DecisionFilter::new(SiteScope::All, 10),
        )
        .await
        .unwrap();
    let outcomes: Vec<DecisionOutcome> = log.iter().map(|d| d.outcome).collect();
    assert_eq!(outcomes, [DecisionOutcome::Executed, DecisionOutcome::Held]);
    assert_eq!(log[0].approval, Some(item.id));
    assert_eq!(log[0].ticket, log[1].ticket);
    let audit = audit_actions(&f.storage).await;
    for expected in [
        ("user:sam", "approval.approve", "success"),
        ("user:sam", "approval.execute", "success"),
        ("user:sam", "approval.approve", "failure"),
        ("user:sam", "approval.reject", "failure"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(audit.contains(&expected), "{expected:?} in {audit:?}");
    }
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_runs_nothing() {
    let f = fixture().await;
    let item = held(&f).await;
    for reason in [None, Some("   ".to_owned())] {
        let Err(Error::Validation(errors)) = f.service.reject(&supervisor(), item.id, reason).await
        else {
            panic!("validation error expected");
        };
        assert_eq!(errors[0].field, "reason");
    }
    let rejected = f
        .service
        .reject(&supervisor(), item.id, Some("too dear".to_owned()))
        .await
        .unwrap();
    assert_eq!(rejected.status, ApprovalStatus::Rejected);
    assert!(f.recorder.runs().is_empty());
    // The executor hears of it once, so the agent can close what waited.
    assert_eq!(f.recorder.declined(), [(item.id, ApprovalStatus::Rejected)]);
    let log = f
        .service
        .decisions(&supervisor(), &DecisionFilter::new(SiteScope::All, 1))
        .await
        .unwrap();
    assert_eq!(log[0].outcome, DecisionOutcome::Rejected);
    assert!(log[0].reason.contains("too dear"));
}

#[tokio::test]
async fn items_of_other_sites_are_not_found() {
    let f = fixture().await;
    let item = held(&f).await;
    let elsewhere = person(
        "bob",
        Role::Supervisor,
        SiteScope::named("sites", &["plant-b"]).unwrap(),
    );
    assert!(matches!(
        f.service.approve(&elsewhere, item.id, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        f.service.get(&elsewhere, item.id).await,
        Err(Error::NotFound)
    ));
    assert!(
        f.service
            .list(&elsewhere, &ApprovalFilter::new(SiteScope::All, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(f.recorder.runs().is_empty());
}

#[tokio::test]
async fn unanswered_items_expire_and_cannot_be_approved_after() {
    let mut f = fixture().await;
    let item = held(&f).await;
    // Not yet due.
    assert_eq!(f.service.sweep().await.unwrap(), 0);
    f.clock.advance(Duration::hours(24));
    // Due but not swept yet: too late to approve all the same.
    let err = f
        .service
        .approve(&supervisor(), item.id, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Expired(_)));
    assert_eq!(err.code(), Code::approval_expired);
    assert_eq!(f.service.sweep().await.unwrap(), 1);
    assert_eq!(f.service.sweep().await.unwrap(), 0);
    assert_eq!(f.recorder.declined(), [(item.id, ApprovalStatus::Expired)]);
    let stored = f.service.get(&operator(), item.id).await.unwrap();
    assert_eq!(stored.status, ApprovalStatus::Expired);
    assert_eq!(stored.answer.unwrap().by, "system");
    assert_eq!(
        published(&mut f).await,
        ["agents.decided", "gates.held", "gates.timed_out"]
    );
    let err = f
        .service
        .approve(&supervisor(), item.id, None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::AlreadyDecided(ApprovalStatus::Expired)
    ));
    assert!(f.recorder.runs().is_empty());
    assert!(audit_actions(&f.storage).await.contains(&(
        "system".to_owned(),
        "approval.expire".to_owned(),
        "success".to_owned()
    )));
}

#[tokio::test]
async fn an_approval_without_an_executor_is_logged_as_failed() {
    let f = fixture().await;
    let mut s = order(0.5, 1);
    s.action.kind = ActionKind::MachineCommand;
    s.action.amount_minor = None;
    s.action.command = Some("standby".to_owned());
    let Submitted::Held { item, .. } = f.service.submit(s).await.unwrap() else {
        panic!("held expected");
    };
    let approved = f
        .service
        .approve(&supervisor(), item.id, None)
        .await
        .unwrap();
    assert!(matches!(approved.execution, Execution::Failed(_)));
    let log = f
        .service
        .decisions(&supervisor(), &DecisionFilter::new(SiteScope::All, 1))
        .await
        .unwrap();
    assert_eq!(log[0].outcome, DecisionOutcome::Failed);
}
