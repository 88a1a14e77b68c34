//! Reliability of a machine over a window, from its tickets: MTBF, MTTR and availability.
//!
//! Every ticket records one failure, reported when the ticket was opened (`created_at`) and
//! repaired when it was resolved (`resolved_at`, the latest resolution). Over the observed
//! window `[from, to)`, which starts no earlier than the machine was registered:
//!
//! - **downtime** is the time covered by at least one ticket between its report and its repair
//!   (or the window's end while unrepaired), overlapping tickets counted once;
//! - **operating time** = observed time − downtime;
//! - **failures** = tickets opened in the window;
//! - **MTBF** = operating time / failures (none without a failure);
//! - **MTTR** = the mean of `resolved_at − created_at` over tickets resolved in the window (none
//!   without a repair);
//! - **availability** = operating time / observed time.
//!
//! MTBF is the standard *mean operating time between failures* (IEC 60050-192, MIL-HDBK-338):
//! operating time divided by the number of failures. The other reading, the mean gap between
//! consecutive failure reports, is not used: that gap includes the repair time (it estimates
//! MTBF + MTTR), it needs two failures to exist at all, and it drops the operating time before
//! the first and after the last failure, which overstates the failure rate of a machine that
//! rarely fails. Operating time / failures uses all observed time and, with the repair time
//! taken out, MTBF and MTTR add up to the mean failure cycle.

use time::{Duration, OffsetDateTime};

use super::Ticket;

/// A machine's reliability over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    /// The observed window: the requested one, starting no earlier than the machine existed.
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub observed: Duration,
    pub downtime: Duration,
    pub operating: Duration,
    /// Tickets opened in the window.
    pub failures: u64,
    /// Tickets resolved in the window (their latest resolution).
    pub repairs: u64,
    /// Tickets opened before the window's end and not resolved by then.
    pub unresolved: u64,
    pub mtbf: Option<Duration>,
    pub mttr: Option<Duration>,
    /// Operating time / observed time, in [0, 1]; none for an empty window.
    pub availability: Option<f64>,
}

/// The reliability over `[from, to)` from `tickets` (any order; those outside the window are
/// ignored). `in_service_since` (the machine's registration) moves the window's start later.
pub fn reliability(
    tickets: &[Ticket],
    from: OffsetDateTime,
    to: OffsetDateTime,
    in_service_since: Option<OffsetDateTime>,
) -> Reliability {
    let start = in_service_since.map_or(from, |s| s.max(from)).min(to);
    let observed = to - start;
    let in_window = |t: OffsetDateTime| t >= start && t < to;

    // Down from report to repair, clipped to the window.
    let mut down: Vec<(OffsetDateTime, OffsetDateTime)> = tickets
        .iter()
        .filter_map(|t| {
            let begin = t.created_at.max(start);
            let end = t.resolved_at.unwrap_or(to).min(to);
            (begin < end).then_some((begin, end))
        })
        .collect();
    down.sort();
    let mut downtime = Duration::ZERO;
    let mut current: Option<(OffsetDateTime, OffsetDateTime)> = None;
    for (begin, end) in down {
        current = match current {
            Some((b, e)) if begin <= e => Some((b, e.max(end))),
            Some((b, e)) => {
                downtime += e - b;
                Some((begin, end))
            }
            None => Some((begin, end)),
        };
    }
    if let Some((b, e)) = current {
        downtime += e - b;
    }
    let operating = observed - downtime;

    let failures = tickets.iter().filter(|t| in_window(t.created_at)).count() as u64;
    let repair_times: Vec<Duration> = tickets
        .iter()
        .filter(|t| t.resolved_at.is_some_and(in_window))
        .filter_map(Ticket::time_to_repair)
        .collect();
    let repairs = repair_times.len() as u64;
    let unresolved = tickets
        .iter()
        .filter(|t| t.created_at < to && t.resolved_at.is_none_or(|r| r >= to))
        .count() as u64;
    let mean =
        |total: Duration, n: u64| i32::try_from(n).ok().filter(|n| *n > 0).map(|n| total / n);
    Reliability {
        from: start,
        to,
        observed,
        downtime,
        operating,
        failures,
        repairs,
        unresolved,
        mtbf: mean(operating, failures),
        mttr: mean(repair_times.iter().copied().sum(), repairs),
        availability: (observed > Duration::ZERO)
            .then(|| operating.as_seconds_f64() / observed.as_seconds_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{FailureType, NewTicket, TicketPriority, Transition};
    use crate::plant::MachineId;

    fn t(hours: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
            + Duration::hours(hours)
    }

    /// A ticket reported at `created` and resolved at `resolved`.
    fn failure(created: i64, resolved: Option<i64>) -> Ticket {
        let mut ticket = NewTicket {
            machine: MachineId("press-01".into()),
            title: "bearing".into(),
            description: String::new(),
            failure_type: FailureType::Bearing,
            priority: TicketPriority::High,
            assignee: None,
            steps: None,
            cost_estimate_minor: None,
            alerts: Vec::new(),
        }
        .open("plant-a".into(), "system".into(), t(created));
        if let Some(resolved) = resolved {
            ticket
                .transition(Transition::Start, "user:otto", t(created), None)
                .unwrap_or_else(|e| panic!("{e}"));
            ticket
                .transition(Transition::Resolve, "user:otto", t(resolved), None)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        ticket
    }

    #[test]
    fn mtbf_is_operating_time_per_failure_and_mttr_the_mean_repair() {
        // 100 hours; failures at 10 (4 h to repair) and 50 (6 h): 10 h down, 90 h operating.
        let tickets = [failure(10, Some(14)), failure(50, Some(56))];
        let r = reliability(&tickets, t(0), t(100), None);
        assert_eq!(r.observed, Duration::hours(100));
        assert_eq!(r.downtime, Duration::hours(10));
        assert_eq!(r.operating, Duration::hours(90));
        assert_eq!((r.failures, r.repairs, r.unresolved), (2, 2, 0));
        assert_eq!(r.mtbf, Some(Duration::hours(45)));
        assert_eq!(r.mttr, Some(Duration::hours(5)));
        assert_eq!(r.availability, Some(0.9));
    }

    #[test]
    fn overlapping_tickets_are_down_once_and_open_ones_until_the_end() {
        // Two failures at once (bearing and heat, 10–20 and 15–25): down 10–25. One still open
        // since 90: down until 100.
        let tickets = [
            failure(10, Some(20)),
            failure(15, Some(25)),
            failure(90, None),
        ];
        let r = reliability(&tickets, t(0), t(100), None);
        assert_eq!(r.downtime, Duration::hours(25));
        assert_eq!((r.failures, r.repairs, r.unresolved), (3, 2, 1));
        assert_eq!(r.mtbf, Some(Duration::hours(25)));
        assert_eq!(r.mttr, Some(Duration::hours(10)));
    }

    #[test]
    fn the_window_clips_tickets_and_starts_with_the_machine() {
        // Reported before the window, repaired inside it: a repair, not a failure, and down
        // only from the window's start.
        let tickets = [failure(-10, Some(5)), failure(60, Some(130))];
        let r = reliability(&tickets, t(0), t(100), None);
        assert_eq!((r.failures, r.repairs, r.unresolved), (1, 1, 1));
        assert_eq!(r.downtime, Duration::hours(5 + 40));
        assert_eq!(r.mttr, Some(Duration::hours(15)), "the whole repair counts");
        // A machine registered at hour 50 is observed for 50 hours only.
        let late = reliability(&[], t(0), t(100), Some(t(50)));
        assert_eq!((late.from, late.observed), (t(50), Duration::hours(50)));
        assert_eq!(late.operating, Duration::hours(50));
    }

    #[test]
    fn without_failures_or_repairs_there_is_no_mean() {
        let r = reliability(&[], t(0), t(100), None);
        assert_eq!((r.mtbf, r.mttr), (None, None));
        assert_eq!(r.availability, Some(1.0));
        let empty = reliability(&[], t(0), t(100), Some(t(200)));
        assert_eq!(empty.observed, Duration::ZERO);
        assert_eq!(empty.availability, None);
    }

    #[test]
    fn a_reopened_ticket_counts_its_final_repair() {
        let mut ticket = failure(0, Some(2));
        ticket
            .transition(
                Transition::Reopen,
                "user:sam",
                t(3),
                Some("still hot".into()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let open = reliability(std::slice::from_ref(&ticket), t(0), t(10), None);
        assert_eq!(
            open.downtime,
            Duration::hours(10),
            "down until repaired again"
        );
        assert_eq!(open.mttr, None);
        ticket
            .transition(Transition::Resolve, "user:otto", t(6), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let r = reliability(&[ticket], t(0), t(10), None);
        assert_eq!(r.mttr, Some(Duration::hours(6)));
        assert_eq!(r.downtime, Duration::hours(6));
    }
}
