use std::sync::Arc;

use time::Duration;

use fb_core::alerts::{AlertKind, AlertStatus};
use fb_core::audit::Outcome as AuditOutcome;
use fb_core::detection::Severity;
use fb_core::identity::{Role, SiteScope, Subject, UserId};
use fb_core::maintenance::{TicketPriority, TicketStatus};
use fb_core::ports::{AuditFilter, Storage};
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;
use fb_testkit::fixtures;

use super::auto::Outcome;
use super::*;

struct Fixture {
    service: Service,
    storage: Storage,
    clock: Arc<FakeClock>,
}

async fn fixture() -> Fixture {
    let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
    let clock = Arc::new(FakeClock::new());
    for (id, site) in [("press-01", "plant-a"), ("pump-07", "plant-b")] {
        let mut m = fixtures::machine(id);
        m.location.site = site.into();
        // Registered long before the fake clock's "now", so windows are fully observed.
        m.created_at = clock.now_for_tests() - Duration::days(400);
        storage.machines.insert_machine(&m).await.unwrap();
    }
    for (name, role, sites) in [
        ("otto", Role::Operator, SiteScope::All),
        (
            "bea",
            Role::Operator,
            SiteScope::named("sites", &["plant-b"]).unwrap(),
        ),
        ("vera", Role::Viewer, SiteScope::All),
    ] {
        let mut user = fixtures::user(name, role);
        user.sites = sites;
        storage.identities.insert_user(&user).await.unwrap();
    }
    let service = Service::new(
        storage.tickets.clone(),
        MachineVisibility::new(storage.machines.clone()),
        storage.identities.clone(),
        Arc::new(audit::Service::new(storage.audit.clone(), clock.clone())),
        clock.clone(),
    );
    Fixture {
        service,
        storage,
        clock,
    }
}

fn person(name: &str, role: Role, sites: SiteScope) -> Principal {
    Principal {
        role,
        sites,
        subject: Subject::User {
            id: UserId(uuid::Uuid::now_v7()),
            username: name.into(),
            session: None,
        },
        mfa_enrolment_pending: false,
    }
}

fn operator() -> Principal {
    person("otto", Role::Operator, SiteScope::All)
}

fn new_ticket(machine: &str) -> NewTicket {
    NewTicket {
        machine: MachineId(machine.into()),
        title: "Grinding noise".into(),
        description: String::new(),
        failure_type: FailureType::Bearing,
        priority: TicketPriority::Medium,
        assignee: None,
        steps: None,
        cost_estimate_minor: None,
        alerts: Vec::new(),
    }
}

fn critical(machine: &str, kind: AlertKind) -> fb_core::alerts::Alert {
    fixtures::alert(machine, kind, Severity::Critical)
}

#[tokio::test]
async fn a_critical_alert_opens_one_ticket_and_the_next_one_joins_it() {
    let f = fixture().await;
    let mut events = f.service.subscribe();
    let first = critical("press-01", AlertKind::Vibration);
    let Outcome::Opened(ticket) = f.service.on_alert(&first).await.unwrap() else {
        panic!("opened")
    };
    assert_eq!(ticket.failure_type, FailureType::Bearing);
    assert_eq!(ticket.priority, TicketPriority::Critical, "the template's");
    assert_eq!(ticket.reporter, "system");
    assert_eq!(ticket.site, "plant-a");
    assert_eq!(ticket.alerts, [first.id]);
    assert!(ticket.title.starts_with("Bearing / vibration: "));
    assert!(!ticket.steps.is_empty());
    assert!(matches!(events.recv().await.unwrap(), TicketEvent::Opened(t) if t.id == ticket.id));

    // The same alert again (updated, escalated, a restart) changes nothing.
    assert_eq!(
        f.service.on_alert(&first).await.unwrap(),
        Outcome::AlreadyLinked(ticket.id)
    );
    // Another alert of the same failure type joins; another failure type gets its own.
    let second = critical("press-01", AlertKind::Vibration);
    let Outcome::Linked(joined) = f.service.on_alert(&second).await.unwrap() else {
        panic!("linked")
    };
    assert_eq!((joined.id, joined.version), (ticket.id, 2));
    assert_eq!(joined.alerts, [first.id, second.id]);
    assert!(matches!(
        events.recv().await.unwrap(),
        TicketEvent::AlertLinked { alert, .. } if alert == second.id
    ));
    let heat = critical("press-01", AlertKind::Overheating);
    assert!(matches!(
        f.service.on_alert(&heat).await.unwrap(),
        Outcome::Opened(t) if t.failure_type == FailureType::Overheating && t.id != ticket.id
    ));

    // Warnings, resolved alerts and alerts of unknown machines open nothing.
    let warning = fixtures::alert("press-01", AlertKind::Flow, Severity::Warning);
    assert_eq!(
        f.service.on_alert(&warning).await.unwrap(),
        Outcome::Ignored
    );
    let mut resolved = critical("press-01", AlertKind::Flow);
    resolved.status = AlertStatus::Resolved;
    assert_eq!(
        f.service.on_alert(&resolved).await.unwrap(),
        Outcome::Ignored
    );
    assert_eq!(
        f.service
            .on_alert(&critical("gone-9", AlertKind::Flow))
            .await
            .unwrap(),
        Outcome::UnknownMachine
    );

    // Both automatic actions are in the audit log, by the system.
    let records = f
        .storage
        .audit
        .list_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.entry.action.as_str(), r.entry.actor.as_str()))
        .collect();
    assert!(
        actions.contains(&("ticket.auto_open", "system")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("ticket.link_alert", "system")),
        "{actions:?}"
    );
    assert!(
        records
            .iter()
            .all(|r| r.entry.outcome == AuditOutcome::Success)
    );
}

#[tokio::test]
async fn once_resolved_a_new_failure_gets_a_new_ticket() {
    let f = fixture().await;
    let Outcome::Opened(first) = f
        .service
        .on_alert(&critical("press-01", AlertKind::Pressure))
        .await
        .unwrap()
    else {
        panic!()
    };
    let op = operator();
    f.service
        .transition(&op, first.id, Transition::Start, Move::default())
        .await
        .unwrap();
    f.service
        .transition(&op, first.id, Transition::Resolve, Move::default())
        .await
        .unwrap();
    let Outcome::Opened(second) = f
        .service
        .on_alert(&critical("press-01", AlertKind::Pressure))
        .await
        .unwrap()
    else {
        panic!("a new ticket")
    };
    assert_ne!(second.id, first.id);
    // Reopening the first now would make two active tickets: refused, naming the active one.
    let refused = f
        .service
        .transition(&op, first.id, Transition::Reopen, Move::default())
        .await;
    assert!(
        matches!(refused, Err(Error::AlreadyOpen(id)) if id == second.id),
        "{refused:?}"
    );
}

#[tokio::test]
async fn catching_up_gives_every_active_critical_alert_its_ticket_once() {
    let f = fixture().await;
    let alerts = [
        critical("press-01", AlertKind::Vibration),
        fixtures::alert("press-01", AlertKind::Overheating, Severity::Warning),
        critical("pump-07", AlertKind::NoData),
    ];
    for a in &alerts {
        f.storage.alerts.insert_alert(a).await.unwrap();
    }
    assert_eq!(f.service.catch_up(&*f.storage.alerts).await.unwrap(), 2);
    assert_eq!(f.service.catch_up(&*f.storage.alerts).await.unwrap(), 0);
    let all = f
        .service
        .list(&operator(), &TicketFilter::new(SiteScope::All, 10))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn people_open_work_and_close_tickets_as_their_permissions_allow() {
    let f = fixture().await;
    let op = operator();
    let viewer = person("vera", Role::Viewer, SiteScope::All);
    assert!(matches!(
        f.service.create(&viewer, new_ticket("press-01")).await,
        Err(Error::PermissionDenied(Permission::TicketsManage))
    ));
    let ticket = f
        .service
        .create(
            &op,
            NewTicket {
                assignee: Some("otto".into()),
                cost_estimate_minor: Some(20_000),
                ..new_ticket("press-01")
            },
        )
        .await
        .unwrap();
    assert_eq!(ticket.reporter, "user:otto");
    assert_eq!(ticket.site, "plant-a");
    // A second ticket for the same failure while the first is active: refused, naming it.
    assert!(matches!(
        f.service.create(&op, new_ticket("press-01")).await,
        Err(Error::AlreadyOpen(id)) if id == ticket.id
    ));
    assert_eq!(f.service.get(&viewer, ticket.id).await.unwrap(), ticket);

    f.clock.advance(Duration::minutes(10));
    let started = f
        .service
        .transition(&op, ticket.id, Transition::Start, Move::default())
        .await
        .unwrap();
    assert_eq!(started.status, TicketStatus::InProgress);
    assert_eq!(started.version, 2);
    let patched = f
        .service
        .update(
            &op,
            ticket.id,
            TicketPatch {
                steps_done: vec![(0, true)],
                ..TicketPatch::default()
            },
            Some(2),
        )
        .await
        .unwrap();
    assert!(patched.steps[0].done);
    // A client that saw version 2 cannot overwrite version 3.
    assert!(matches!(
        f.service
            .update(
                &op,
                ticket.id,
                TicketPatch {
                    priority: Some(TicketPriority::Low),
                    ..TicketPatch::default()
                },
                Some(2)
            )
            .await,
        Err(Error::VersionConflict {
            expected: 2,
            current: 3
        })
    ));
    f.clock.advance(Duration::hours(2));
    let resolved = f
        .service
        .transition(
            &op,
            ticket.id,
            Transition::Resolve,
            Move {
                comment: Some("bearing replaced".into()),
                actual_cost_minor: Some(23_450),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(resolved.actual_cost_minor, Some(23_450));
    assert_eq!(resolved.time_to_repair(), Some(Duration::minutes(130)));

    // An operator cannot sign the repair off; a supervisor can; then nothing changes it.
    assert!(matches!(
        f.service
            .transition(&op, ticket.id, Transition::Close, Move::default())
            .await,
        Err(Error::PermissionDenied(Permission::TicketsClose))
    ));
    let supervisor = person("sue", Role::Supervisor, SiteScope::All);
    let closed = f
        .service
        .transition(&supervisor, ticket.id, Transition::Close, Move::default())
        .await
        .unwrap();
    assert_eq!(closed.status, TicketStatus::Closed);
    assert!(matches!(
        f.service
            .transition(&op, ticket.id, Transition::Reopen, Move::default())
            .await,
        Err(Error::Transition(_))
    ));
    assert!(matches!(
        f.service
            .update(
                &op,
                ticket.id,
                TicketPatch {
                    title: Some("renamed".into()),
                    ..TicketPatch::default()
                },
                None
            )
            .await,
        Err(Error::Closed(_))
    ));
}

#[tokio::test]
async fn bad_input_names_its_fields() {
    let f = fixture().await;
    let op = operator();
    let Err(Error::Validation(errors)) = f
        .service
        .create(
            &op,
            NewTicket {
                title: String::new(),
                cost_estimate_minor: Some(-5),
                ..new_ticket("no-such-machine")
            },
        )
        .await
    else {
        panic!("refused")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["title", "cost_estimate_minor", "machine"]);
    // An assignee must be an active user who works on tickets of the machine's site.
    for who in ["vera", "bea", "nobody"] {
        let Err(Error::Validation(errors)) = f
            .service
            .create(
                &op,
                NewTicket {
                    assignee: Some(who.into()),
                    ..new_ticket("press-01")
                },
            )
            .await
        else {
            panic!("{who} refused")
        };
        assert_eq!(errors[0].field, "assignee", "{who}");
    }
    let ticket = f.service.create(&op, new_ticket("pump-07")).await.unwrap();
    let assigned = f
        .service
        .update(
            &op,
            ticket.id,
            TicketPatch {
                assignee: Some(Some("bea".into())),
                ..TicketPatch::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(assigned.assignee.as_deref(), Some("bea"));
    assert!(matches!(
        f.service
            .transition(
                &op,
                ticket.id,
                Transition::Start,
                Move {
                    actual_cost_minor: Some(10),
                    ..Move::default()
                }
            )
            .await,
        Err(Error::Validation(e)) if e[0].field == "actual_cost_minor"
    ));
}

#[tokio::test]
async fn scoped_callers_see_and_change_only_their_sites_tickets() {
    let f = fixture().await;
    let op = operator();
    let a = f.service.create(&op, new_ticket("press-01")).await.unwrap();
    let b = f.service.create(&op, new_ticket("pump-07")).await.unwrap();
    let bea = person(
        "bea",
        Role::Operator,
        SiteScope::named("sites", &["plant-b"]).unwrap(),
    );
    let listed = f
        .service
        .list(&bea, &TicketFilter::new(SiteScope::All, 10))
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), [b.id]);
    assert!(matches!(
        f.service.get(&bea, a.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        f.service
            .transition(&bea, a.id, Transition::Start, Move::default())
            .await,
        Err(Error::NotFound)
    ));
    // A machine of another site is like one that does not exist.
    assert!(matches!(
        f.service.create(&bea, new_ticket("press-01")).await,
        Err(Error::Validation(e)) if e[0].field == "machine"
    ));
    assert!(matches!(
        f.service
            .reliability(
                &bea,
                "press-01",
                f.service.now() - Duration::days(1),
                f.service.now(),
                None
            )
            .await,
        Err(Error::MachineNotFound(_))
    ));
}

#[tokio::test]
async fn reliability_comes_from_the_machines_tickets() {
    let f = fixture().await;
    let op = operator();
    let start = f.service.now();
    // Two failures in 100 hours: repaired after 4 and 6 hours.
    for (at, repair, failure) in [
        (10, 4, FailureType::Bearing),
        (50, 6, FailureType::Overheating),
    ] {
        f.clock
            .advance(start + Duration::hours(at) - f.service.now());
        let t = f
            .service
            .create(
                &op,
                NewTicket {
                    failure_type: failure,
                    ..new_ticket("press-01")
                },
            )
            .await
            .unwrap();
        f.service
            .transition(&op, t.id, Transition::Start, Move::default())
            .await
            .unwrap();
        f.clock.advance(Duration::hours(repair));
        f.service
            .transition(&op, t.id, Transition::Resolve, Move::default())
            .await
            .unwrap();
    }
    let end = start + Duration::hours(100);
    let r = f
        .service
        .reliability(&op, "press-01", start, end, None)
        .await
        .unwrap();
    assert_eq!((r.failures, r.repairs), (2, 2));
    assert_eq!(r.mtbf, Some(Duration::hours(45)));
    assert_eq!(r.mttr, Some(Duration::hours(5)));
    let bearing = f
        .service
        .reliability(&op, "press-01", start, end, Some(FailureType::Bearing))
        .await
        .unwrap();
    assert_eq!(
        (bearing.failures, bearing.mttr),
        (1, Some(Duration::hours(4)))
    );
    assert!(matches!(
        f.service.reliability(&op, "press-01", end, start, None).await,
        Err(Error::Validation(e)) if e[0].field == "from"
    ));
    // A window at the very end of representable time is answered, not a panic.
    let last = time::macros::datetime!(9999-12-31 23:59:59.999999 UTC);
    let far = f
        .service
        .reliability(&op, "press-01", last - Duration::days(90), last, None)
        .await
        .unwrap();
    assert_eq!(far.failures, 0);
}

#[tokio::test]
async fn an_active_ticket_follows_its_machine_to_another_site() {
    let f = fixture().await;
    let first = critical("press-01", AlertKind::Vibration);
    let Outcome::Opened(ticket) = f.service.on_alert(&first).await.unwrap() else {
        panic!("opened")
    };
    assert_eq!(ticket.site, "plant-a");
    let mut moved = f
        .storage
        .machines
        .machine(&MachineId("press-01".into()))
        .await
        .unwrap()
        .unwrap();
    moved.location.site = "plant-b".into();
    assert!(f.storage.machines.update_machine(&moved).await.unwrap());

    // The next alert, seen by plant-b, joins the ticket, which plant-b now sees.
    let second = critical("press-01", AlertKind::Vibration);
    let Outcome::Linked(joined) = f.service.on_alert(&second).await.unwrap() else {
        panic!("linked")
    };
    assert_eq!((joined.id, joined.site.as_str()), (ticket.id, "plant-b"));
    let bea = person(
        "bea",
        Role::Operator,
        SiteScope::named("s", &["plant-b"]).unwrap(),
    );
    assert_eq!(
        f.service.get(&bea, ticket.id).await.unwrap().site,
        "plant-b"
    );
}

#[tokio::test]
async fn the_auto_ticket_rule_writes_its_decisions_to_the_decision_log_once() {
    let f = fixture().await;
    let gates = Arc::new(crate::gates::Service::new(
        f.storage.approvals.clone(),
        f.storage.decisions.clone(),
        fb_core::gates::Gates::default(),
        Arc::new(audit::Service::new(
            f.storage.audit.clone(),
            f.clock.clone(),
        )),
        f.clock.clone(),
    ));
    assert!(f.service.attach_decision_log(gates));
    let first = critical("press-01", AlertKind::Vibration);
    let Outcome::Opened(ticket) = f.service.on_alert(&first).await.unwrap() else {
        panic!("opened")
    };
    f.service.on_alert(&first).await.unwrap();
    let second = critical("press-01", AlertKind::Vibration);
    f.service.on_alert(&second).await.unwrap();
    let log = f
        .storage
        .decisions
        .list_decisions(&fb_core::ports::DecisionFilter::new(SiteScope::All, 10))
        .await
        .unwrap();
    let mut actions: Vec<(&str, Option<uuid::Uuid>)> =
        log.iter().map(|d| (d.action.as_str(), d.alert)).collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("ticket.auto_open", Some(first.id.0)),
            ("ticket.link_alert", Some(second.id.0)),
        ]
    );
    assert!(log.iter().all(|d| d.agent == "maintenance"
        && d.ticket == Some(ticket.id.0)
        && d.confidence == 1.0
        && d.outcome == fb_core::gates::DecisionOutcome::Executed));
}
