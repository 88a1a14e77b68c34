use time::Duration;
use uuid::Uuid;

use fb_core::alerts::AlertId;
use fb_core::identity::SiteScope;
use fb_core::maintenance::{
    FailureType, Ticket, TicketId, TicketPatch, TicketPriority, TicketStatus, Transition,
};
use fb_core::plant::MachineId;
use fb_core::ports::{Storage, StoreError, TicketFilter};

use crate::fixtures::{instant, ticket};

/// The ticket moved on by `change`, with the next version, as a service would write it.
fn next(mut t: Ticket, change: impl FnOnce(&mut Ticket)) -> Ticket {
    change(&mut t);
    t.version += 1;
    t
}

fn go(t: &mut Ticket, action: Transition, minutes: i64) {
    t.transition(
        action,
        "user:otto",
        instant() + Duration::minutes(minutes),
        None,
    )
    .unwrap();
}

pub async fn tickets_round_trip_and_update_by_version(storage: &Storage) {
    let store = &storage.tickets;
    let mut t = ticket("press-01", "plant-a", FailureType::Bearing);
    let alert = AlertId(Uuid::now_v7());
    t.alerts.push(alert);
    store.insert_ticket(&t).await.unwrap();
    assert_eq!(store.ticket(t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(
        store.ticket_for_alert(alert).await.unwrap(),
        Some(t.clone())
    );

    // Everything a ticket holds survives a write: steps ticked off, costs, transitions with
    // comments, timestamps with microseconds.
    let patch = TicketPatch {
        priority: Some(TicketPriority::Critical),
        assignee: Some(None),
        actual_cost_minor: Some(Some(99_999)),
        steps_done: vec![(1, true)],
        ..TicketPatch::default()
    };
    let updated = next(t.clone(), |t| {
        t.apply(&patch, "user:otto", instant() + Duration::minutes(1))
            .unwrap();
        go(t, Transition::Start, 2);
        t.transition(
            Transition::Resolve,
            "user:otto",
            instant() + Duration::minutes(90),
            Some("bearing replaced; grease was black".into()),
        )
        .unwrap();
    });
    assert!(store.update_ticket(&updated, 1).await.unwrap());
    assert_eq!(store.ticket(t.id).await.unwrap(), Some(updated.clone()));
    // A writer that read version 1 does not overwrite version 2.
    let stale = next(t.clone(), |t| t.title = "stale".into());
    assert!(!store.update_ticket(&stale, 1).await.unwrap());
    assert_eq!(store.ticket(t.id).await.unwrap(), Some(updated));
    assert_eq!(store.ticket(TicketId(Uuid::now_v7())).await.unwrap(), None);
    assert_eq!(
        store
            .ticket_for_alert(AlertId(Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );
}

pub async fn one_active_ticket_per_machine_and_failure_type(storage: &Storage) {
    let store = &storage.tickets;
    let first = ticket("press-02", "plant-a", FailureType::Overheating);
    store.insert_ticket(&first).await.unwrap();
    let second = ticket("press-02", "plant-a", FailureType::Overheating);
    assert!(matches!(
        store.insert_ticket(&second).await,
        Err(StoreError::Conflict {
            constraint: "ticket_active"
        })
    ));
    // Another failure type, or another machine, is fine; so is an in-progress first one...
    store
        .insert_ticket(&ticket("press-02", "plant-a", FailureType::Flow))
        .await
        .unwrap();
    store
        .insert_ticket(&ticket("press-03", "plant-a", FailureType::Overheating))
        .await
        .unwrap();
    let started = next(first.clone(), |t| go(t, Transition::Start, 1));
    assert!(store.update_ticket(&started, 1).await.unwrap());
    assert!(matches!(
        store.insert_ticket(&second).await,
        Err(StoreError::Conflict {
            constraint: "ticket_active"
        })
    ));
    // ...until it is resolved: then a new failure of the same type gets its own ticket.
    let resolved = next(started, |t| go(t, Transition::Resolve, 30));
    assert!(store.update_ticket(&resolved, 2).await.unwrap());
    store.insert_ticket(&second).await.unwrap();
    // Reopening the resolved one now would make two active tickets: refused, unchanged.
    let reopened = next(resolved.clone(), |t| go(t, Transition::Reopen, 40));
    assert!(matches!(
        store.update_ticket(&reopened, 3).await,
        Err(StoreError::Conflict {
            constraint: "ticket_active"
        })
    ));
    assert_eq!(store.ticket(first.id).await.unwrap(), Some(resolved));
}

pub async fn concurrent_inserts_leave_one_active_ticket(storage: &Storage) {
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = storage.tickets.clone();
            tokio::spawn(async move {
                store
                    .insert_ticket(&ticket("press-04", "plant-a", FailureType::Electrical))
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => stored += 1,
            Err(StoreError::Conflict {
                constraint: "ticket_active",
            }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stored, 1);
    let active = TicketFilter {
        active_only: true,
        ..TicketFilter::new(SiteScope::All, 100)
    };
    assert_eq!(
        storage.tickets.list_tickets(&active).await.unwrap().len(),
        1
    );
}

pub async fn an_alert_is_linked_to_one_ticket(storage: &Storage) {
    let store = &storage.tickets;
    let (a1, a2) = (AlertId(Uuid::now_v7()), AlertId(Uuid::now_v7()));
    let mut first = ticket("press-05", "plant-a", FailureType::Bearing);
    first.alerts.push(a1);
    store.insert_ticket(&first).await.unwrap();
    // A second alert of the same failure joins the ticket.
    let linked = next(first.clone(), |t| {
        t.link_alert(a2, instant() + Duration::minutes(5));
    });
    assert!(store.update_ticket(&linked, 1).await.unwrap());
    assert_eq!(
        store.ticket(first.id).await.unwrap().unwrap().alerts,
        [a1, a2]
    );
    assert_eq!(
        store.ticket_for_alert(a2).await.unwrap().map(|t| t.id),
        Some(first.id)
    );
    // Another ticket cannot take an alert that is linked already, on insert or update.
    let mut other = ticket("press-05", "plant-a", FailureType::Flow);
    other.alerts.push(a1);
    assert!(matches!(
        store.insert_ticket(&other).await,
        Err(StoreError::Conflict {
            constraint: "ticket_alert"
        })
    ));
    other.alerts.clear();
    store.insert_ticket(&other).await.unwrap();
    let stolen = next(other.clone(), |t| {
        t.link_alert(a2, instant());
    });
    assert!(matches!(
        store.update_ticket(&stolen, 1).await,
        Err(StoreError::Conflict {
            constraint: "ticket_alert"
        })
    ));
    assert_eq!(store.ticket(other.id).await.unwrap(), Some(other));
}

pub async fn tickets_are_listed_newest_first_with_filters(storage: &Storage) {
    let store = &storage.tickets;
    let mut made = Vec::new();
    for (machine, site, failure, priority) in [
        ("m1", "north", FailureType::Bearing, TicketPriority::High),
        ("m1", "north", FailureType::Flow, TicketPriority::Low),
        (
            "m2",
            "south",
            FailureType::Bearing,
            TicketPriority::Critical,
        ),
        ("m3", "o'hara; --", FailureType::Other, TicketPriority::High),
    ] {
        let mut t = ticket(machine, site, failure);
        t.priority = priority;
        store.insert_ticket(&t).await.unwrap();
        made.push(t);
    }
    let resolved = next(made[0].clone(), |t| {
        go(t, Transition::Start, 1);
        go(t, Transition::Resolve, 2);
    });
    assert!(store.update_ticket(&resolved, 1).await.unwrap());

    let ids = |tickets: Vec<Ticket>| tickets.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let list =
        |filter: TicketFilter| async move { ids(store.list_tickets(&filter).await.unwrap()) };
    let all = TicketFilter::new(SiteScope::All, 100);
    let newest_first: Vec<_> = made.iter().rev().map(|t| t.id).collect();
    assert_eq!(list(all.clone()).await, newest_first);
    let m1 = TicketFilter {
        machine: Some(MachineId("m1".into())),
        ..all.clone()
    };
    assert_eq!(list(m1.clone()).await, [made[1].id, made[0].id]);
    let active_m1 = TicketFilter {
        active_only: true,
        ..m1
    };
    assert_eq!(list(active_m1).await, [made[1].id]);
    let resolved_only = TicketFilter {
        status: Some(TicketStatus::Resolved),
        ..all.clone()
    };
    assert_eq!(list(resolved_only).await, [made[0].id]);
    let high = TicketFilter {
        priority: Some(TicketPriority::High),
        ..all.clone()
    };
    assert_eq!(list(high).await, [made[3].id, made[0].id]);
    let bearing = TicketFilter {
        failure_type: Some(FailureType::Bearing),
        ..all.clone()
    };
    assert_eq!(list(bearing).await, [made[2].id, made[0].id]);
    let page = TicketFilter {
        before: Some(made[2].id),
        limit: 1,
        ..all.clone()
    };
    assert_eq!(list(page).await, [made[1].id]);

    // Sites: bound one parameter each, never spliced; the limit counts visible tickets only.
    let named = |names: &[&str]| SiteScope::named("sites", names).unwrap();
    assert_eq!(
        list(TicketFilter::new(named(&["north"]), 100)).await,
        [made[1].id, made[0].id]
    );
    assert_eq!(
        list(TicketFilter::new(named(&["north"]), 1)).await,
        [made[1].id]
    );
    assert_eq!(
        list(TicketFilter::new(named(&["o'hara; --"]), 100)).await,
        [made[3].id]
    );
    assert!(
        list(TicketFilter::new(SiteScope::Sites(Default::default()), 100))
            .await
            .is_empty()
    );
}

pub async fn machine_tickets_are_those_that_bear_on_the_window(storage: &Storage) {
    let store = &storage.tickets;
    let at = |hours: i64| instant() + Duration::hours(hours);
    // (opened, resolved) in hours from the fixture's instant.
    let mut made = Vec::new();
    for (opened, resolved) in [
        (0, Some(2)),   // resolved before the window
        (5, Some(12)),  // reported before, repaired inside
        (15, Some(16)), // inside
        (18, None),     // inside, still open
        (30, None),     // after the window
    ] {
        let mut t = ticket("press-06", "plant-a", FailureType::Other);
        t.failure_type = [
            FailureType::Bearing,
            FailureType::Flow,
            FailureType::Electrical,
            FailureType::Overheating,
            FailureType::Other,
        ][made.len()];
        t.created_at = at(opened);
        if let Some(resolved) = resolved {
            t.transition(Transition::Start, "user:otto", at(opened), None)
                .unwrap();
            t.transition(Transition::Resolve, "user:otto", at(resolved), None)
                .unwrap();
        }
        store.insert_ticket(&t).await.unwrap();
        made.push(t);
    }
    store
        .insert_ticket(&ticket("press-07", "plant-a", FailureType::Other))
        .await
        .unwrap();
    let machine = MachineId("press-06".into());
    let found = store
        .machine_tickets(&machine, at(10), at(20), 100)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|t| t.id).collect::<Vec<_>>(),
        [made[1].id, made[2].id, made[3].id],
        "oldest first"
    );
    assert_eq!(found[0], made[1]);
    let limited = store
        .machine_tickets(&machine, at(10), at(20), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
}
