//! Checking a chain: every record against its own hash, each against the one before it, and the
//! whole against the stored head and any anchors kept elsewhere.
//!
//! [`Verifier`] takes records one at a time in seq order, so a log of any length is checked in
//! bounded memory (stores hand it pages). What it keeps grows only with the damage found.

use super::{AuditHead, AuditRecord, ChainHash, ScannedRecord, chain_hash};

/// Where a checkpoint came from: the head the store keeps, or an anchor the operator kept
/// outside the store (`factorybrain audit head`, written down or shipped elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    Head,
    Anchor,
}

impl CheckpointKind {
    fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Head => "head",
            CheckpointKind::Anchor => "anchor",
        }
    }
}

/// A (seq, hash) the chain must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: ChainHash,
    pub kind: CheckpointKind,
}

/// One thing wrong with the chain. Each names the records it concerns by seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The record's content (or one of its hashes) changed after it was written.
    Edited { seq: u64 },
    /// The row cannot be read as a record at all.
    Unreadable { seq: u64, reason: String },
    /// The content at `seq` was written as record `written_as`: records were reordered.
    Reordered { seq: u64, written_as: u64 },
    /// Records `first..=last` are gone from between the records around them.
    Deleted { first: u64, last: u64 },
    /// An intact record does not link to the intact record before it: one of the two was
    /// replaced by a forgery whose hash was recomputed, or records were inserted.
    Unlinked { seq: u64 },
    /// Records `first..=last`, which the head or an anchor says were written, are gone from the
    /// end of the log.
    Truncated {
        first: u64,
        last: u64,
        by: CheckpointKind,
    },
    /// The record at `seq` is not the one the head or an anchor recorded: the chain was
    /// rewritten at or before it.
    CheckpointMismatch { seq: u64, by: CheckpointKind },
    /// Records `first..=last` lie past the stored head (seq `first - 1`): written around the
    /// store's append, or the head was moved back.
    BeyondHead { first: u64, last: u64 },
    /// The stored head is gone, so a cut-off tail can be seen only with an anchor.
    HeadMissing,
    /// Records were handed to the verifier out of seq order (a caller's bug, not tampering).
    OutOfOrder { seq: u64, after: u64 },
}

impl Problem {
    /// A stable snake_case name, for machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Edited { .. } => "edited",
            Problem::Unreadable { .. } => "unreadable",
            Problem::Reordered { .. } => "reordered",
            Problem::Deleted { .. } => "deleted",
            Problem::Unlinked { .. } => "unlinked",
            Problem::Truncated { .. } => "truncated",
            Problem::CheckpointMismatch { .. } => "checkpoint_mismatch",
            Problem::BeyondHead { .. } => "beyond_head",
            Problem::HeadMissing => "head_missing",
            Problem::OutOfOrder { .. } => "out_of_order",
        }
    }

    /// The first seq the problem concerns (0 for the head itself).
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Edited { seq }
            | Problem::Unreadable { seq, .. }
            | Problem::Reordered { seq, .. }
            | Problem::Unlinked { seq }
            | Problem::CheckpointMismatch { seq, .. }
            | Problem::OutOfOrder { seq, .. } => *seq,
            Problem::Deleted { first, .. }
            | Problem::Truncated { first, .. }
            | Problem::BeyondHead { first, .. } => *first,
            Problem::HeadMissing => 0,
        }
    }

    /// The last seq the problem concerns.
    pub fn last_seq(&self) -> u64 {
        match self {
            Problem::Deleted { last, .. }
            | Problem::Truncated { last, .. }
            | Problem::BeyondHead { last, .. } => *last,
            other => other.seq(),
        }
    }
}

fn seqs(first: u64, last: u64) -> String {
    if first == last {
        format!("seq {first}")
    } else {
        format!("seq {first}-{last}")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Edited { seq } => write!(
                f,
                "seq {seq}: edited: its content no longer matches its hash"
            ),
            Problem::Unreadable { seq, reason } => {
                write!(f, "seq {seq}: unreadable: {reason}")
            }
            Problem::Reordered { seq, written_as } => write!(
                f,
                "seq {seq}: reordered: this record was written as seq {written_as}"
            ),
            Problem::Deleted { first, last } => write!(
                f,
                "{}: deleted: missing between the records around them",
                seqs(*first, *last)
            ),
            Problem::Unlinked { seq } => write!(
                f,
                "seq {seq}: unlinked: does not follow seq {}; one of the two was replaced by a \
                 record with a recomputed hash",
                seq.saturating_sub(1)
            ),
            Problem::Truncated { first, last, by } => write!(
                f,
                "{}: deleted from the end: the {} names seq {last}, the log ends at seq {}",
                seqs(*first, *last),
                by.as_str(),
                first.saturating_sub(1)
            ),
            Problem::CheckpointMismatch { seq, by } => write!(
                f,
                "seq {seq}: not the record the {} names: the chain was rewritten at or before it",
                by.as_str()
            ),
            Problem::BeyondHead { first, last } => write!(
                f,
                "{}: beyond the head (seq {}): written around the store's append, or the head \
                 was moved back",
                seqs(*first, *last),
                first.saturating_sub(1)
            ),
            Problem::HeadMissing => write!(
                f,
                "head: missing: the stored head was deleted; a cut-off end shows only against \
                 an anchor"
            ),
            Problem::OutOfOrder { seq, after } => {
                write!(f, "seq {seq}: out of order: given after seq {after}")
            }
        }
    }
}

/// Records whose own hash fails are kept until the end, to tell reordered from edited; past
/// this many, further ones are reported as edited without that analysis.
const MAX_EXPLAINED: usize = 1_000;

/// The record before the one being checked, as far as linking is concerned.
struct Previous {
    seq: u64,
    /// Its hash, when the record is intact (a broken one cannot vouch for its successor).
    hash: Option<ChainHash>,
}

/// A streaming chain check. Feed every record in ascending seq order, then [`finish`](Self::finish).
pub struct Verifier {
    /// Sorted by seq; the flag says whether the record at that seq was seen.
    checkpoints: Vec<(Checkpoint, bool)>,
    previous: Option<Previous>,
    /// Records whose own hash fails, for the reorder analysis.
    broken: Vec<AuditRecord>,
    /// Seqs of unreadable rows: possible original places of moved records.
    unreadable: Vec<u64>,
    problems: Vec<Problem>,
    checked: u64,
}

impl Verifier {
    /// `head` is the stored head read *before* the records (`None`: the store has none);
    /// `anchors` are heads kept outside the store.
    pub fn new(head: Option<AuditHead>, anchors: &[AuditHead]) -> Verifier {
        let mut problems = Vec::new();
        let mut checkpoints: Vec<(Checkpoint, bool)> = Vec::new();
        match head {
            Some(head) => checkpoints.push((
                Checkpoint {
                    seq: head.seq,
                    hash: head.hash,
                    kind: CheckpointKind::Head,
                },
                false,
            )),
            None => problems.push(Problem::HeadMissing),
        }
        checkpoints.extend(anchors.iter().map(|a| {
            (
                Checkpoint {
                    seq: a.seq,
                    hash: a.hash,
                    kind: CheckpointKind::Anchor,
                },
                false,
            )
        }));
        // The empty log's head names no record.
        checkpoints.retain(|(c, _)| c.seq > 0);
        checkpoints.sort_by_key(|(c, _)| c.seq);
        Verifier {
            checkpoints,
            previous: None,
            broken: Vec::new(),
            unreadable: Vec::new(),
            problems,
            checked: 0,
        }
    }

    /// Records (and unreadable rows) checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The highest seq seen so far; 0 before any.
    pub fn last_seq(&self) -> u64 {
        self.previous.as_ref().map_or(0, |p| p.seq)
    }

    /// Checks the next row.
    pub fn feed(&mut self, scanned: ScannedRecord) {
        let seq = match &scanned {
            Ok(record) => record.seq,
            Err(unreadable) => unreadable.seq,
        };
        let expected = self.last_seq() + 1;
        if seq < expected {
            self.problems.push(Problem::OutOfOrder {
                seq,
                after: expected - 1,
            });
            return;
        }
        self.checked += 1;
        if seq > expected {
            self.problems.push(Problem::Deleted {
                first: expected,
                last: seq - 1,
            });
        }
        let follows_directly = seq == expected;
        let record = match scanned {
            Ok(record) => record,
            Err(unreadable) => {
                self.pass_checkpoints(seq, None);
                self.unreadable.push(seq);
                self.problems.push(Problem::Unreadable {
                    seq,
                    reason: unreadable.reason,
                });
                self.previous = Some(Previous { seq, hash: None });
                return;
            }
        };
        self.pass_checkpoints(seq, Some(record.hash));
        let intact = record.is_intact();
        if intact && follows_directly {
            // Record 1 follows the genesis hash; every other follows its intact predecessor.
            let predecessor = match &self.previous {
                None => Some(ChainHash::GENESIS),
                Some(previous) => previous.hash,
            };
            if predecessor.is_some_and(|hash| hash != record.prev_hash) {
                self.problems.push(Problem::Unlinked { seq });
            }
        }
        self.previous = Some(Previous {
            seq,
            hash: intact.then_some(record.hash),
        });
        if !intact {
            if self.broken.len() < MAX_EXPLAINED {
                self.broken.push(record);
            } else {
                self.problems.push(Problem::Edited { seq });
            }
        }
    }

    /// Compares the record at `seq` with the checkpoints that name it.
    fn pass_checkpoints(&mut self, seq: u64, hash: Option<ChainHash>) {
        for (checkpoint, seen) in &mut self.checkpoints {
            if checkpoint.seq == seq {
                *seen = true;
                // An unreadable row is reported as such; it cannot match anything.
                if hash.is_some_and(|h| h != checkpoint.hash) {
                    self.problems.push(Problem::CheckpointMismatch {
                        seq,
                        by: checkpoint.kind,
                    });
                }
            }
        }
    }

    /// Ends the check. `head_after` is the stored head read again after the last record: records
    /// past it were not appended through the store. Problems come back ordered by seq.
    pub fn finish(mut self, head_after: Option<AuditHead>) -> Vec<Problem> {
        let last = self.last_seq();
        // Checkpoints past the end: the records up to the furthest one were cut off.
        if let Some((furthest, _)) = self
            .checkpoints
            .iter()
            .filter(|(c, seen)| !seen && c.seq > last)
            .max_by_key(|(c, _)| c.seq)
        {
            self.problems.push(Problem::Truncated {
                first: last + 1,
                last: furthest.seq,
                by: furthest.kind,
            });
        }
        if let Some(head) = head_after
            && last > head.seq
        {
            self.problems.push(Problem::BeyondHead {
                first: head.seq + 1,
                last,
            });
        }
        let explained = explain_broken(&self.broken, &self.unreadable);
        self.problems.extend(explained);
        self.problems.sort_by_key(|p| (p.seq(), p.last_seq()));
        self.problems
    }
}

/// Tells reordered records from edited ones. A record whose own hash fails but that verifies at
/// another damaged position, or whose content carries another damaged position's hash, was
/// moved there from that position; anything else was edited.
fn explain_broken(broken: &[AuditRecord], unreadable: &[u64]) -> Vec<Problem> {
    broken
        .iter()
        .map(|b| {
            let moved_whole = broken
                .iter()
                .map(|c| c.seq)
                .chain(unreadable.iter().copied())
                .find(|&seq| seq != b.seq && chain_hash(&b.prev_hash, seq, &b.entry) == b.hash);
            let moved_content = || {
                broken
                    .iter()
                    .find(|c| c.seq != b.seq && chain_hash(&c.prev_hash, c.seq, &b.entry) == c.hash)
                    .map(|c| c.seq)
            };
            match moved_whole.or_else(moved_content) {
                Some(written_as) => Problem::Reordered {
                    seq: b.seq,
                    written_as,
                },
                None => Problem::Edited { seq: b.seq },
            }
        })
        .collect()
}

/// Checks a whole chain held in memory, in seq order, against the stored head.
pub fn verify(records: &[AuditRecord], head: Option<AuditHead>) -> Vec<Problem> {
    let mut verifier = Verifier::new(head, &[]);
    for record in records {
        verifier.feed(Ok(record.clone()));
    }
    verifier.finish(head)
}

#[cfg(test)]
mod tests {
    use super::super::tests::entry;
    use super::super::{AuditEntry, UnreadableRecord};
    use super::*;

    /// A chain of `n` records and its head.
    fn chain(n: u64) -> (Vec<AuditRecord>, AuditHead) {
        let mut head = AuditHead::EMPTY;
        let mut records = Vec::new();
        for i in 1..=n {
            let mut e: AuditEntry = entry("user.disable");
            e.target = Some(format!("user:u{i}"));
            let record = AuditRecord::next(&head, e);
            head = record.as_head();
            records.push(record);
        }
        (records, head)
    }

    fn at(records: &mut [AuditRecord], seq: u64) -> &mut AuditRecord {
        records.iter_mut().find(|r| r.seq == seq).unwrap()
    }

    #[test]
    fn an_intact_chain_has_no_problem() {
        let (records, head) = chain(5);
        assert_eq!(verify(&records, Some(head)), []);
        assert_eq!(verify(&[], Some(AuditHead::EMPTY)), []);
    }

    #[test]
    fn an_edited_record_is_named() {
        let (mut records, head) = chain(5);
        at(&mut records, 3).entry.actor = "user:mallory".into();
        assert_eq!(verify(&records, Some(head)), [Problem::Edited { seq: 3 }]);
        // Rewriting only a stored hash is an edit too, and does not blame the next record.
        let (mut records, head) = chain(5);
        at(&mut records, 2).hash = ChainHash([7; 32]);
        assert_eq!(verify(&records, Some(head)), [Problem::Edited { seq: 2 }]);
    }

    #[test]
    fn deleted_records_are_named_as_a_range() {
        let (mut records, head) = chain(8);
        records.retain(|r| r.seq != 3 && r.seq != 4);
        records.retain(|r| r.seq != 1);
        assert_eq!(
            verify(&records, Some(head)),
            [
                Problem::Deleted { first: 1, last: 1 },
                Problem::Deleted { first: 3, last: 4 }
            ]
        );
    }

    #[test]
    fn reordered_records_are_told_from_edited_ones() {
        // Rows swapped whole (seq values exchanged), as an UPDATE of seq would.
        let (mut records, head) = chain(6);
        records.swap(2, 4);
        records[2].seq = 3;
        records[4].seq = 5;
        assert_eq!(
            verify(&records, Some(head)),
            [
                Problem::Reordered {
                    seq: 3,
                    written_as: 5
                },
                Problem::Reordered {
                    seq: 5,
                    written_as: 3
                }
            ]
        );
        // Only the contents swapped, each row keeping its hashes.
        let (mut records, head) = chain(6);
        let third = records[2].entry.clone();
        records[2].entry = records[3].entry.clone();
        records[3].entry = third;
        assert_eq!(
            verify(&records, Some(head)),
            [
                Problem::Reordered {
                    seq: 3,
                    written_as: 4
                },
                Problem::Reordered {
                    seq: 4,
                    written_as: 3
                }
            ]
        );
    }

    #[test]
    fn a_cut_off_end_is_seen_against_the_head_and_anchors() {
        let (mut records, head) = chain(6);
        records.truncate(4);
        assert_eq!(
            verify(&records, Some(head)),
            [Problem::Truncated {
                first: 5,
                last: 6,
                by: CheckpointKind::Head
            }]
        );
        // The head moved back with the cut: only an anchor kept elsewhere shows it.
        let moved_back = records[3].as_head();
        assert_eq!(verify(&records, Some(moved_back)), []);
        let mut verifier = Verifier::new(Some(moved_back), &[head]);
        for r in &records {
            verifier.feed(Ok(r.clone()));
        }
        assert_eq!(
            verifier.finish(Some(moved_back)),
            [Problem::Truncated {
                first: 5,
                last: 6,
                by: CheckpointKind::Anchor
            }]
        );
    }

    #[test]
    fn a_forged_record_with_a_recomputed_hash_breaks_the_link() {
        let (mut records, head) = chain(5);
        let forged = AuditRecord::next(&records[1].as_head(), entry("user.enable"));
        records[2] = forged;
        assert_eq!(verify(&records, Some(head)), [Problem::Unlinked { seq: 4 }]);
    }

    #[test]
    fn a_rewritten_chain_is_seen_only_against_an_anchor() {
        let (records, head) = chain(5);
        let anchor = records[2].as_head();
        // Everything from seq 2 on rewritten consistently, head included.
        let mut rewritten = records[..1].to_vec();
        let mut h = rewritten[0].as_head();
        for _ in 2..=5 {
            let r = AuditRecord::next(&h, entry("user.enable"));
            h = r.as_head();
            rewritten.push(r);
        }
        assert_eq!(verify(&rewritten, Some(h)), []);
        let mut verifier = Verifier::new(Some(h), &[anchor, head]);
        for r in &rewritten {
            verifier.feed(Ok(r.clone()));
        }
        assert_eq!(
            verifier.finish(Some(h)),
            [
                Problem::CheckpointMismatch {
                    seq: 3,
                    by: CheckpointKind::Anchor
                },
                Problem::CheckpointMismatch {
                    seq: 5,
                    by: CheckpointKind::Anchor
                }
            ]
        );
    }

    #[test]
    fn records_past_the_head_and_a_missing_head_are_reported() {
        let (records, _) = chain(4);
        let behind = records[1].as_head();
        assert_eq!(
            verify(&records, Some(behind)),
            [Problem::BeyondHead { first: 3, last: 4 }]
        );
        assert_eq!(verify(&records, None), [Problem::HeadMissing]);
    }

    #[test]
    fn unreadable_rows_are_reported_and_the_check_goes_on() {
        let (records, head) = chain(4);
        let mut verifier = Verifier::new(Some(head), &[]);
        for r in &records {
            if r.seq == 2 {
                verifier.feed(Err(UnreadableRecord {
                    seq: 2,
                    reason: "outcome \"maybe\"".into(),
                }));
            } else {
                verifier.feed(Ok(r.clone()));
            }
        }
        assert_eq!(verifier.checked(), 4);
        assert_eq!(
            verifier.finish(Some(head)),
            [Problem::Unreadable {
                seq: 2,
                reason: "outcome \"maybe\"".into()
            }]
        );
    }

    #[test]
    fn every_kind_of_tampering_at_once_is_each_reported() {
        let (mut records, head) = chain(10);
        at(&mut records, 2).entry.outcome = super::super::Outcome::Failure;
        records.retain(|r| r.seq != 4);
        let six = records.iter().position(|r| r.seq == 6).unwrap();
        records.swap(six, six + 1);
        records[six].seq = 6;
        records[six + 1].seq = 7;
        records.retain(|r| r.seq <= 8);
        let problems = verify(&records, Some(head));
        assert_eq!(
            problems,
            [
                Problem::Edited { seq: 2 },
                Problem::Deleted { first: 4, last: 4 },
                Problem::Reordered {
                    seq: 6,
                    written_as: 7
                },
                Problem::Reordered {
                    seq: 7,
                    written_as: 6
                },
                Problem::Truncated {
                    first: 9,
                    last: 10,
                    by: CheckpointKind::Head
                },
            ]
        );
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines[1],
            "seq 4: deleted: missing between the records around them"
        );
        assert_eq!(
            lines[4],
            "seq 9-10: deleted from the end: the head names seq 10, the log ends at seq 8"
        );
    }

    #[test]
    fn records_given_out_of_order_are_a_caller_error() {
        let (records, head) = chain(3);
        let shuffled = [records[0].clone(), records[2].clone(), records[1].clone()];
        let problems = verify(&shuffled, Some(head));
        assert!(problems.contains(&Problem::OutOfOrder { seq: 2, after: 3 }));
    }
}
