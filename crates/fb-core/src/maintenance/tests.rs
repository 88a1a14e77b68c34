use time::{Duration, OffsetDateTime};

use super::*;

fn t(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        + Duration::minutes(minutes)
}

fn new_ticket() -> NewTicket {
    NewTicket {
        machine: MachineId("press-01".into()),
        title: "  Bearing noise on the main drive  ".into(),
        description: "Grinding at high speed.\nStarted this morning.".into(),
        failure_type: FailureType::Bearing,
        priority: TicketPriority::High,
        assignee: Some("otto".into()),
        steps: None,
        cost_estimate_minor: Some(45_000),
        alerts: Vec::new(),
    }
}

fn opened() -> Ticket {
    new_ticket().open("plant-a".into(), "user:sam".into(), t(0))
}

#[test]
fn a_new_ticket_is_open_with_its_templates_steps() {
    let ticket = opened();
    assert_eq!(ticket.status, TicketStatus::Open);
    assert_eq!(ticket.title, "Bearing noise on the main drive");
    assert_eq!(ticket.version, 1);
    assert_eq!(
        ticket
            .steps
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>(),
        template(FailureType::Bearing).steps
    );
    assert!(ticket.steps.iter().all(|s| !s.done));
    let own = NewTicket {
        steps: Some(vec![" Swap the bearing ".into()]),
        ..new_ticket()
    }
    .open("plant-a".into(), "user:sam".into(), t(0));
    assert_eq!(own.steps, [RepairStep::new("Swap the bearing")]);
}

#[test]
fn the_lifecycle_follows_the_table_and_nothing_else() {
    for from in TicketStatus::ALL {
        for action in Transition::ALL {
            let allowed = TRANSITIONS
                .iter()
                .find(|(f, a, _)| *f == from && *a == action);
            match (action.target(from), allowed) {
                (Ok(to), Some((_, _, expected))) => assert_eq!(to, *expected),
                (Err(e), None) => {
                    assert_eq!((e.from, e.action), (from, action));
                }
                (got, table) => panic!("{from:?} {action:?}: {got:?} but the table says {table:?}"),
            }
        }
    }
    // A closed ticket goes nowhere.
    assert!(
        Transition::ALL
            .iter()
            .all(|a| a.target(TicketStatus::Closed).is_err())
    );
}

#[test]
fn transitions_record_who_and_when_and_set_the_timestamps() {
    let mut ticket = opened();
    let refused = ticket.transition(Transition::Resolve, "user:otto", t(1), None);
    assert_eq!(
        refused.map_err(|e| e.to_string()),
        Err("the ticket is open; it cannot resolve".to_owned())
    );
    assert_eq!(ticket.status, TicketStatus::Open, "unchanged");

    ticket
        .transition(Transition::Start, "user:otto", t(5), None)
        .unwrap();
    assert_eq!(ticket.started_at, Some(t(5)));
    ticket
        .transition(
            Transition::Resolve,
            "user:otto",
            t(65),
            Some("  bearing replaced  ".into()),
        )
        .unwrap();
    assert_eq!(ticket.status, TicketStatus::Resolved);
    assert_eq!(ticket.resolved_at, Some(t(65)));
    assert_eq!(ticket.time_to_repair(), Some(Duration::minutes(65)));
    assert_eq!(
        ticket.resolution().and_then(|r| r.comment.as_deref()),
        Some("bearing replaced")
    );

    ticket
        .transition(
            Transition::Reopen,
            "user:sam",
            t(70),
            Some("still noisy".into()),
        )
        .unwrap();
    assert_eq!(ticket.status, TicketStatus::InProgress);
    assert_eq!(ticket.resolved_at, None, "the repair did not hold");
    assert_eq!(ticket.resolution(), None);
    assert_eq!(ticket.started_at, Some(t(5)), "the first start stays");
    ticket
        .transition(Transition::Resolve, "user:otto", t(90), None)
        .unwrap();
    ticket
        .transition(Transition::Close, "user:sue", t(120), None)
        .unwrap();
    assert_eq!(ticket.closed_at, Some(t(120)));
    let actions: Vec<_> = ticket
        .history
        .iter()
        .map(|a| (a.action, a.by.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (Transition::Start, "user:otto"),
            (Transition::Resolve, "user:otto"),
            (Transition::Reopen, "user:sam"),
            (Transition::Resolve, "user:otto"),
            (Transition::Close, "user:sue"),
        ]
    );
    assert!(
        ticket
            .transition(Transition::Reopen, "user:sam", t(130), None)
            .is_err()
    );
    assert_eq!(
        ticket.apply(&TicketPatch::default(), "user:sam", t(130)),
        Err(ClosedError)
    );
}

#[test]
fn patches_change_fields_and_tick_steps_off() {
    let mut ticket = opened();
    let patch = TicketPatch {
        priority: Some(TicketPriority::Critical),
        assignee: Some(None),
        actual_cost_minor: Some(Some(51_000)),
        steps_done: vec![(0, true), (2, true)],
        ..TicketPatch::default()
    };
    assert!(patch.validate(&ticket).is_empty());
    assert_eq!(ticket.apply(&patch, "user:otto", t(10)), Ok(true));
    assert_eq!(ticket.priority, TicketPriority::Critical);
    assert_eq!(ticket.assignee, None);
    assert_eq!(ticket.actual_cost_minor, Some(51_000));
    let done: Vec<bool> = ticket.steps.iter().map(|s| s.done).collect();
    assert_eq!(done, [true, false, true, false, false, false]);
    assert_eq!(ticket.steps[0].done_by.as_deref(), Some("user:otto"));
    assert_eq!(ticket.steps[0].done_at, Some(t(10)));
    assert_eq!(ticket.updated_at, t(10));
    // The same patch again changes nothing, and says so.
    assert_eq!(ticket.apply(&patch, "user:otto", t(11)), Ok(false));
    assert_eq!(ticket.updated_at, t(10));
}

#[test]
fn bad_input_is_named_field_by_field() {
    let bad = NewTicket {
        title: "   ".into(),
        assignee: Some("Not A User".into()),
        steps: Some(vec!["ok".into(), String::new()]),
        cost_estimate_minor: Some(-1),
        ..new_ticket()
    };
    let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        ["title", "assignee", "steps[1]", "cost_estimate_minor"]
    );
    assert!(new_ticket().validate().is_empty());
    let too_many = NewTicket {
        steps: Some(vec!["x".into(); STEPS_MAX + 1]),
        ..new_ticket()
    };
    assert_eq!(too_many.validate()[0].field, "steps");
    let ticket = opened();
    let patch = TicketPatch {
        title: Some("a\u{7}b".into()),
        cost_estimate_minor: Some(Some(COST_MAX_MINOR + 1)),
        steps_done: vec![(0, true), (6, true)],
        ..TicketPatch::default()
    };
    let fields: Vec<String> = patch
        .validate(&ticket)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["title", "cost_estimate_minor", "steps[1].step"]);
}

#[test]
fn alerts_link_once_and_map_to_failure_types() {
    let mut ticket = opened();
    let alert = AlertId(Uuid::now_v7());
    assert!(ticket.link_alert(alert, t(1)));
    assert!(!ticket.link_alert(alert, t(2)));
    assert_eq!(ticket.alerts, [alert]);
    assert_eq!(
        FailureType::of_alert(AlertKind::Vibration),
        FailureType::Bearing
    );
    assert_eq!(
        FailureType::of_alert(AlertKind::Power),
        FailureType::Electrical
    );
    assert_eq!(
        FailureType::of_alert(AlertKind::NoData),
        FailureType::SensorFault
    );
    for kind in AlertKind::ALL {
        // Every alert kind has a failure type with a template.
        let failure = FailureType::of_alert(kind);
        assert_eq!(template(failure).failure_type, failure);
    }
    for t in FailureType::ALL {
        assert_eq!(FailureType::parse(t.as_str()), Some(t));
    }
}

#[test]
fn history_keeps_the_latest_transitions() {
    let mut ticket = opened();
    ticket
        .transition(Transition::Start, "user:otto", t(0), None)
        .unwrap();
    for i in 0..HISTORY_MAX {
        let i = i as i64;
        ticket
            .transition(Transition::Resolve, "user:otto", t(2 * i + 1), None)
            .unwrap();
        ticket
            .transition(Transition::Reopen, "user:sam", t(2 * i + 2), None)
            .unwrap();
    }
    assert_eq!(ticket.history.len(), HISTORY_MAX);
    assert_eq!(
        ticket.history.last().map(|a| a.action),
        Some(Transition::Reopen)
    );
}
