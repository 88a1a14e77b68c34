use super::*;

fn order(confidence: f64, amount_minor: Option<i64>) -> Action {
    Action {
        kind: ActionKind::PurchaseOrder,
        site: "plant-a".to_owned(),
        machine: Some(MachineId("press-01".to_owned())),
        summary: "Order 4 bearings".to_owned(),
        payload: "{\"part\":\"6205\",\"quantity\":4}".to_owned(),
        confidence,
        amount_minor,
        command: None,
        requested_by: "procurement".to_owned(),
    }
}

fn command(confidence: f64, name: &str) -> Action {
    Action {
        kind: ActionKind::MachineCommand,
        command: Some(name.to_owned()),
        amount_minor: None,
        ..order(confidence, None)
    }
}

fn codes(verdict: &Verdict) -> Vec<&'static str> {
    match verdict {
        Verdict::Proceed => Vec::new(),
        Verdict::Hold { reasons } => reasons.iter().map(HoldReason::code).collect(),
    }
}

#[test]
fn confident_orders_within_the_limit_proceed() {
    let gates = Gates::default();
    let verdict = gates.purchase_order.judge(&order(0.8, Some(500_000)));
    assert_eq!(verdict, Verdict::Proceed);
}

#[test]
fn below_the_threshold_holds_naming_both_figures() {
    let gates = Gates::default();
    let verdict = gates.purchase_order.judge(&order(0.79, Some(100)));
    assert_eq!(
        verdict,
        Verdict::Hold {
            reasons: vec![HoldReason::LowConfidence {
                confidence: 0.79,
                threshold: 0.8
            }]
        }
    );
}

#[test]
fn above_the_limit_holds() {
    let gates = Gates::default();
    let verdict = gates.purchase_order.judge(&order(0.99, Some(500_001)));
    assert_eq!(
        verdict,
        Verdict::Hold {
            reasons: vec![HoldReason::AmountOverLimit {
                amount_minor: 500_001,
                limit_minor: 500_000
            }]
        }
    );
}

#[test]
fn below_the_threshold_and_above_the_limit_names_both_reasons() {
    let gates = Gates::default();
    let verdict = gates.purchase_order.judge(&order(0.1, Some(900_000)));
    assert_eq!(codes(&verdict), ["low_confidence", "amount_over_limit"]);
}

#[test]
fn an_order_without_an_amount_is_held_where_amounts_are_limited() {
    let gates = Gates::default();
    assert_eq!(
        codes(&gates.purchase_order.judge(&order(0.95, None))),
        ["amount_missing"]
    );
}

#[test]
fn a_nan_confidence_is_never_enough() {
    let gates = Gates::default();
    assert_eq!(
        codes(&gates.purchase_order.judge(&order(f64::NAN, Some(1)))),
        ["low_confidence"]
    );
}

#[test]
fn machine_commands_outside_the_allowed_set_are_held() {
    let gates = Gates::default();
    assert_eq!(
        gates.machine_command.judge(&command(0.95, "standby")),
        Verdict::Proceed
    );
    assert_eq!(
        codes(&gates.machine_command.judge(&command(0.95, "shutdown"))),
        ["command_not_allowed"]
    );
    assert_eq!(
        codes(&gates.machine_command.judge(&command(0.5, "shutdown"))),
        ["low_confidence", "command_not_allowed"]
    );
}

#[test]
fn only_supervisors_and_admins_may_approve_orders() {
    use crate::identity::Role;
    let approver = ActionKind::PurchaseOrder.approver();
    assert!(Role::Admin.allows(approver));
    assert!(Role::Supervisor.allows(approver));
    assert!(!Role::Operator.allows(approver));
    assert!(!Role::Viewer.allows(approver));
}

#[test]
fn gate_settings_are_checked_field_by_field() {
    let mut gates = Gates::default();
    assert!(gates.validate().is_empty());
    gates.purchase_order.min_confidence = 1.5;
    gates.purchase_order.max_amount_minor = Some(-1);
    gates.machine_command.timeout = Duration::ZERO;
    gates.machine_command.allowed_commands = Some(vec![" ".to_owned()]);
    let fields: Vec<String> = gates.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "gates.purchase_order.min_confidence",
            "gates.purchase_order.max_amount_minor",
            "gates.machine_command.allowed_commands",
            "gates.machine_command.timeout",
        ]
    );
}

#[test]
fn actions_are_checked_field_by_field() {
    let mut action = command(2.0, "");
    action.summary = String::new();
    action.amount_minor = Some(-5);
    let fields: Vec<String> = action.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["summary", "confidence", "amount_minor", "command"]);
    assert!(order(0.5, Some(1)).validate().is_empty());
}

#[test]
fn a_held_item_waits_for_the_gates_timeout_and_gives_back_its_action() {
    let gates = Gates::default();
    let action = order(0.5, Some(1));
    let Verdict::Hold { reasons } = gates.purchase_order.judge(&action) else {
        panic!("held expected");
    };
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let item = ApprovalItem::held(&action, &gates.purchase_order, &reasons, None, now);
    assert_eq!(item.status, ApprovalStatus::Pending);
    assert_eq!(item.expires_at, now + Duration::hours(24));
    assert_eq!(item.reasons, ["low_confidence: 0.50 < 0.80"]);
    assert!(item.is_open_at(now));
    assert!(!item.is_open_at(item.expires_at));
    assert_eq!(item.action(), action);
}

#[test]
fn a_rejection_needs_a_reason() {
    let at = OffsetDateTime::UNIX_EPOCH;
    let mut answer = Answer {
        status: ApprovalStatus::Rejected,
        by: "user:sam".to_owned(),
        at,
        reason: None,
    };
    assert_eq!(answer.validate()[0].field, "reason");
    answer.reason = Some("  ".to_owned());
    assert_eq!(answer.validate()[0].field, "reason");
    answer.reason = Some("supplier is on hold".to_owned());
    assert!(answer.validate().is_empty());
    answer.status = ApprovalStatus::Approved;
    answer.reason = None;
    assert!(answer.validate().is_empty());
}

#[test]
fn names_round_trip() {
    for k in ActionKind::ALL {
        assert_eq!(ActionKind::parse(k.as_str()), Some(*k));
    }
    for s in ApprovalStatus::ALL {
        assert_eq!(ApprovalStatus::parse(s.as_str()), Some(*s));
    }
    for o in DecisionOutcome::ALL {
        assert_eq!(DecisionOutcome::parse(o.as_str()), Some(*o));
    }
}

#[test]
fn keyed_decision_ids_are_stable_per_agent_and_key() {
    let a = DecisionId::for_key("energy", "0190-cmd");
    assert_eq!(a, DecisionId::for_key("energy", "0190-cmd"));
    assert_ne!(a, DecisionId::for_key("procurement", "0190-cmd"));
    assert_ne!(a, DecisionId::for_key("energy", "0190-cmd2"));
    // Length-prefixed: moving a character between agent and key gives another id.
    assert_ne!(
        DecisionId::for_key("ab", "c"),
        DecisionId::for_key("a", "bc")
    );
    assert_eq!(a.0.get_version_num(), 8);
    assert_eq!(DecisionId::new().0.get_version_num(), 7);
}
