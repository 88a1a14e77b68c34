// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::alerts::{Alert, AlertAction, AlertId, AlertKind, AlertStatus};
use crate::detection::{Anomaly, AnomalyKind, DetectorKind, Evidence, Severity};
use crate::plant::{MachineId, SensorKey};

fn machine() -> MachineId {
    MachineId("press-01".into())
}

fn alert() -> Alert {
    let at = datetime!(2026-11-02 10:15:00.123456789 UTC);
    Alert {
        id: AlertId(Uuid::now_v7()),
        machine: machine(),
        kind: AlertKind::Overheating,
        severity: Severity::Critical,
        status: AlertStatus::Acknowledged,
        title: "Overheating: temperature 121.5 °C".into(),
        evidence: vec![
            Evidence::number("value", 121.5),
            Evidence::text("zone", "D"),
        ],
        opened_at: at,
        last_seen_at: at,
        occurrences: 2,
        acknowledged: Some(AlertAction {
            by: "user:otto".into(),
            at,
            comment: Some("on it".into()),
        }),
        resolved: None,
        escalation_level: 1,
        escalated_at: None,
        version: 3,
        updated_at: at,
    }
}

/// One event of every type.
fn every_event() -> Vec<Event> {
    let a = AlertEvent::from(&alert());
    let anomaly = Anomaly {
        id: Uuid::now_v7(),
        machine: machine(),
        sensor: Some(SensorKey("temperature".into())),
        kind: AnomalyKind::Overheating,
        detector: DetectorKind::Limits,
        severity: Severity::Warning,
        at: datetime!(2026-11-02 10:14:59 UTC),
        score: 0.93,
        evidence: vec![Evidence::number("value", 88.0)],
    };
    vec![
        Event::AnomalyDetected(AnomalyEvent::from(&anomaly)),
        Event::AlertOpened(a.clone()),
        Event::AlertAcknowledged(a.clone()),
        Event::AlertResolved(a),
        Event::Ticket(TicketEvent {
            ticket: Uuid::now_v7(),
            machine: machine(),
            status: TicketStatus::InProgress,
            priority: TicketPriority::High,
            title: "Replace bearing".into(),
            failure_type: Some("bearing_wear".into()),
            alert: Some(AlertId(Uuid::now_v7())),
            assignee: Some("otto".into()),
        }),
        Event::Order(OrderEvent {
            order: Uuid::now_v7(),
            machine: None,
            ticket: None,
            part: "SKF 6205".into(),
            quantity: 4,
            supplier: Some("Bearings GmbH".into()),
            status: OrderStatus::AwaitingApproval,
            currency: "EUR".into(),
            amount_minor: 12_480,
            savings_minor: 960,
        }),
        Event::EnergyRecommendation(EnergyRecommendationEvent {
            recommendation: Uuid::now_v7(),
            machine: machine(),
            action: EnergyAction::Standby,
            expected_kwh_saved: 12.5,
            expected_co2_kg_saved: 6.25,
            reason: "idle for 45 min in the peak window".into(),
        }),
        Event::AgentDecision(AgentDecisionEvent {
            decision: Uuid::now_v7(),
            agent: "maintenance".into(),
            machine: Some(machine()),
            inputs: "critical overheating alert".into(),
            action: "open_ticket".into(),
            reason: "critical alert without an open ticket".into(),
            confidence: 0.92,
            outcome: DecisionOutcome::Executed,
            trigger: Some(EventId::new()),
        }),
        Event::GateDecision(GateDecisionEvent {
            item: Uuid::now_v7(),
            gate: "orders".into(),
            verdict: GateVerdict::Approved,
            confidence: 0.6,
            threshold: 0.8,
            by: Some("user:sue".into()),
            reason: Some("needed this week".into()),
            decision: Some(Uuid::now_v7()),
        }),
        Event::Coordination(CoordinationEvent {
            directive: Directive::IncreaseMonitoring,
            machine: Some(machine()),
            reason: "critical overheating alert".into(),
            until: Some(datetime!(2026-11-02 11:15:00 UTC)),
            factor: Some(0.5),
            failure_type: None,
            decision: Some(Uuid::now_v7()),
        }),
        Event::Coordination(CoordinationEvent {
            directive: Directive::ActivateReductionMode,
            machine: None,
            reason: "peak tariff".into(),
            until: None,
            factor: None,
            failure_type: None,
            decision: None,
        }),
    ]
}

#[test]
fn every_event_round_trips_through_json() {
    for event in every_event() {
        let envelope = Envelope::new(
            "test",
            Some("plant-a"),
            datetime!(2026-11-02 11:15:00.123456789 +01:00),
            event,
        )
        .caused_by(EventId::new());
        let json = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, envelope, "{json}");
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["type"], envelope.event().name());
        assert_eq!(value["subject"], envelope.subject());
        assert!(value["data"].is_object(), "{json}");
    }
}

#[test]
fn times_are_utc_to_the_microsecond() {
    let e = Envelope::new(
        "test",
        Some("plant-a"),
        datetime!(2026-11-02 11:15:00.123456789 +01:00),
        every_event().remove(1),
    );
    assert_eq!(e.occurred_at(), datetime!(2026-11-02 10:15:00.123456 UTC));
    let value = serde_json::to_value(&e).unwrap();
    assert_eq!(value["occurred_at"], "2026-11-02T10:15:00.123456Z");
}

#[test]
fn subjects_name_family_action_site_and_key() {
    let subjects: Vec<String> = every_event()
        .iter()
        .map(|e| subject_of(Some("plant-a"), e))
        .collect();
    assert_eq!(
        subjects,
        [
            "anomalies.detected.plant-a.press-01",
            "alerts.opened.plant-a.press-01",
            "alerts.acknowledged.plant-a.press-01",
            "alerts.resolved.plant-a.press-01",
            "tickets.in_progress.plant-a.press-01",
            "orders.awaiting_approval.plant-a.~",
            "energy.recommended.plant-a.press-01",
            "agents.decided.plant-a.maintenance",
            "gates.approved.plant-a.orders",
            "plant.increase_monitoring.plant-a.press-01",
            "plant.activate_reduction_mode.plant-a.~",
        ]
    );
    // Free-text sites and dotted machine ids stay one token each; no site is `~`.
    let mut dotted = AlertEvent::from(&alert());
    dotted.machine = MachineId("CNC-01.a".into());
    assert_eq!(
        subject_of(Some("Werk Süd"), &Event::AlertOpened(dotted.clone())),
        "alerts.opened.Werk~20S~C3~BCd.CNC-01~2Ea"
    );
    assert_eq!(
        subject_of(None, &Event::AlertOpened(dotted)),
        "alerts.opened.~.CNC-01~2Ea"
    );
    // Every subject is one a filter can name exactly.
    for s in &subjects {
        assert!(SubjectFilter::parse("f", s).unwrap().matches(s));
    }
}

#[test]
fn the_wire_format_is_pinned() {
    // A message as another implementation would write it: this must keep parsing.
    let text = json!({
        "version": 1,
        "id": "0190f2d4-6c2e-7a3b-8f00-000000000001",
        "occurred_at": "2026-11-02T10:15:00.5Z",
        "source": "alerts",
        "site": "plant-a",
        "subject": "alerts.opened.plant-a.press-01",
        "type": "alert.opened",
        "data": {
            "alert": "0190f2d4-6c2e-7a3b-8f00-000000000002",
            "machine": "press-01",
            "kind": "overheating",
            "severity": "critical",
            "status": "open",
            "title": "Overheating",
            "evidence": [{"name": "value", "value": 121.5}, {"name": "zone", "value": "D"}],
            "opened_at": "2026-11-02T10:15:00Z",
            "escalation_level": 0,
            "acknowledged": null,
            "resolved": null,
            "version": 1
        }
    });
    let e: Envelope = serde_json::from_value(text).unwrap();
    assert_eq!(e.source(), "alerts");
    assert_eq!(e.cause(), None, "caused_by may be left out");
    let Event::AlertOpened(a) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!(a.machine, machine());
    assert_eq!(a.evidence[1], Evidence::text("zone", "D"));
}

fn refused(mut value: Value, edit: impl FnOnce(&mut Value)) -> String {
    edit(&mut value);
    serde_json::from_value::<Envelope>(value)
        .map(|e| format!("accepted: {e:?}"))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn envelopes_that_lie_about_themselves_are_refused_naming_the_field() {
    let good = serde_json::to_value(Envelope::new(
        "alerts",
        Some("plant-a"),
        datetime!(2026-11-02 10:15:00 UTC),
        every_event().remove(1),
    ))
    .unwrap();
    let newer = refused(good.clone(), |v| v["version"] = json!(2));
    assert!(newer.contains("version 2 is not a version"), "{newer}");
    let moved = refused(good.clone(), |v| v["site"] = json!("plant-b"));
    assert!(
        moved.contains("subject is 'alerts.opened.plant-a.press-01' but the event belongs under 'alerts.opened.plant-b.press-01'"),
        "{moved}"
    );
    let local = refused(good.clone(), |v| {
        v["occurred_at"] = json!("2026-11-02T11:15:00+01:00")
    });
    assert!(local.contains("occurred_at must be in UTC"), "{local}");
    let anonymous = refused(good.clone(), |v| v["source"] = json!(" "));
    assert!(anonymous.contains("source must be 1 to"), "{anonymous}");
    let unknown = refused(good, |v| v["type"] = json!("alert.exploded"));
    assert!(unknown.contains("alert.exploded"), "{unknown}");
}

#[test]
fn wire_enums_round_trip_their_names() {
    for s in TicketStatus::ALL {
        assert_eq!(TicketStatus::parse(s.as_str()), Some(*s));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            Value::String(s.as_str().into())
        );
    }
    for s in OrderStatus::ALL {
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            Value::String(s.as_str().into())
        );
    }
    for v in GateVerdict::ALL {
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            Value::String(v.as_str().into())
        );
    }
    for a in EnergyAction::ALL {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            Value::String(a.as_str().into())
        );
    }
    for d in Directive::ALL {
        assert_eq!(Directive::parse(d.as_str()), Some(*d));
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            Value::String(d.as_str().into())
        );
    }
    for o in DecisionOutcome::ALL {
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            Value::String(o.as_str().into())
        );
    }
}

#[test]
fn a_coordination_event_s_wire_format_is_pinned() {
    let text = json!({
        "version": 1,
        "id": "0190f2d4-6c2e-7a3b-8f00-000000000001",
        "occurred_at": "2026-11-02T10:15:00Z",
        "source": "agent:optimizer",
        "site": "plant-a",
        "subject": "plant.prepare_spare_parts.plant-a.press-01",
        "type": "plant.coordinated",
        "data": {
            "directive": "prepare_spare_parts",
            "machine": "press-01",
            "reason": "ticket opened",
            "failure_type": "bearing"
        }
    });
    let e: Envelope = serde_json::from_value(text).unwrap();
    let Event::Coordination(c) = e.event() else {
        panic!("{e:?}")
    };
    assert_eq!(c.directive, Directive::PrepareSpareParts);
    assert_eq!(c.failure_type.as_deref(), Some("bearing"));
    assert_eq!(
        (c.until, c.factor, c.decision),
        (None, None, None),
        "optional fields may be left out"
    );
}
