//! The RTMPT reorder window (`rtmpt::session::ordering::Reorder`) driven
//! the way a session drives it, by requests decoded from the input. It
//! never panics, and:
//! - every request is queued, replayed (a duplicate of the last applied
//!   one) or refused, for the reason its sequence number gives: stale below
//!   the next one, too far ahead from `next + REORDER_WINDOW`, already
//!   queued when waiting; nothing is lost (queued = applied + waiting);
//! - requests are applied in strictly consecutive order, from 0 (or from 1
//!   once the start grace gives up on 0), each at most once;
//! - at most `REORDER_WINDOW` requests wait, all in
//!   `next..next + REORDER_WINDOW`, and the next one never waits once the
//!   session has applied what it can;
//! - the gap deadline is the earliest arrival plus the grace, and a gap
//!   that does not fill ends the session with the right missing number.
//!
//! Each operation is two bytes: a kind and an argument.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rtmpgate::rtmpt::command::{REORDER_WINDOW, RefuseReason};
use rtmpgate::rtmpt::session::ordering::{Reorder, Unapplied};
use tokio::time::Instant;

/// What the session queues: the request's own sequence number and whether
/// it is an `/idle` (which may park and hold the window).
type Item = (u64, bool);

struct Sim {
    order: Reorder<Item>,
    /// Last applied (answered) sequence number: the cached reply's.
    last: Option<u64>,
    /// A parked `/idle`.
    parked: Option<u64>,
    applied: Vec<u64>,
    queued: usize,
}

impl Sim {
    /// `Session::apply_ready`: applies while the next request is there.
    fn apply_ready(&mut self, park: bool) {
        while self.parked.is_none() {
            let Some((seq, (item_seq, idle))) = self.order.pop_ready() else {
                break;
            };
            assert_eq!(seq, item_seq, "popped another request than its number");
            if let Some(&prev) = self.applied.last() {
                assert_eq!(seq, prev + 1, "applied out of order");
            } else {
                assert!(seq <= 1, "first applied is {seq}");
            }
            assert_eq!(self.order.next_seq(), Some(seq + 1));
            self.applied.push(seq);
            if idle && park && !self.order.is_waiting(seq + 1) {
                self.parked = Some(seq);
            } else {
                self.last = Some(seq);
            }
        }
        if self.parked.is_none()
            && let Some(next) = self.order.next_seq()
        {
            assert!(!self.order.is_waiting(next), "the next request waits");
        }
    }

    fn release(&mut self) {
        if let Some(seq) = self.parked.take() {
            self.last = Some(seq);
        }
    }

    fn check_window(&self) {
        assert!(
            self.order.len() <= REORDER_WINDOW as usize,
            "{} waiting",
            self.order.len()
        );
        let next = self.order.next_seq().unwrap_or(0);
        for seq in self.order.waiting() {
            assert!(
                seq >= next && seq < next + REORDER_WINDOW,
                "{seq} waits, next is {next}"
            );
        }
        assert_eq!(
            self.queued,
            self.applied.len() + self.order.len(),
            "a request was lost"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut arrivals: Vec<(u64, Instant)> = Vec::new();
    let mut s = Sim {
        order: Reorder::default(),
        last: None,
        parked: None,
        applied: Vec::new(),
        queued: 0,
    };
    for op in input.chunks_exact(2) {
        let (kind, arg) = (op[0], op[1]);
        match kind % 4 {
            // A request: the argument is a small offset from the next
            // sequence number (or, with the top bit of kind, a wild one).
            0 | 1 => {
                let idle = kind & 0x10 != 0;
                let next = s.order.next_seq().unwrap_or(0);
                let seq = if kind & 0x80 != 0 {
                    u64::from(arg) << (kind & 0x3c)
                } else {
                    next.saturating_add_signed(i64::from(arg as i8 >> 2))
                };
                // A new request releases a parked idle first.
                s.release();
                let (before_next, waiting) = (s.order.next_seq(), s.order.is_waiting(seq));
                let effective_next = if before_next.is_none() && seq == 0 {
                    0
                } else {
                    next
                };
                match s.order.file(seq, (seq, idle), now, s.last, s.parked) {
                    Ok(reordered) => {
                        assert!(seq >= effective_next && seq < effective_next + REORDER_WINDOW);
                        assert!(!waiting, "queued {seq} twice");
                        assert_eq!(reordered, seq != effective_next);
                        s.queued += 1;
                        arrivals.push((seq, now));
                    }
                    Err(((item_seq, _), why)) => {
                        assert_eq!(item_seq, seq, "another request came back");
                        let expected = if seq < effective_next {
                            if s.last == Some(seq) {
                                Unapplied::Duplicate
                            } else {
                                Unapplied::Refused(RefuseReason::Stale)
                            }
                        } else if seq >= effective_next + REORDER_WINDOW {
                            Unapplied::Refused(RefuseReason::TooFarAhead)
                        } else {
                            assert!(waiting, "{seq} refused as queued but was not waiting");
                            Unapplied::Refused(RefuseReason::AlreadyQueued)
                        };
                        assert_eq!(why, expected, "request {seq}, next {effective_next}");
                    }
                }
                s.apply_ready(kind & 0x20 != 0);
            }
            // The connection carrying the parked idle has another request.
            2 => {
                s.release();
                s.apply_ready(false);
            }
            // Time passes; the gap timer fires if it is due.
            _ => {
                now += Duration::from_millis(u64::from(arg) * 40);
                arrivals.retain(|(seq, _)| s.order.is_waiting(*seq));
                let earliest = arrivals.iter().map(|(_, at)| *at).min();
                let deadline = s.order.gap_deadline();
                assert_eq!(deadline.is_some(), !s.order.is_empty());
                if let (Some(d), Some(at)) = (deadline, earliest) {
                    let grace = if s.order.next_seq().is_none() {
                        100
                    } else {
                        5000
                    };
                    assert_eq!(d, at + Duration::from_millis(grace), "gap deadline");
                }
                if deadline.is_some_and(|d| d <= now) {
                    let before = s.order.next_seq();
                    match s.order.gap_timeout() {
                        Ok(()) => {
                            assert!(before.is_none(), "a started session took a grace");
                            assert_eq!(s.order.next_seq(), Some(1));
                            s.apply_ready(false);
                        }
                        Err(missing) => {
                            assert_eq!(missing, before.unwrap_or(0));
                            assert!(
                                !s.order.is_waiting(missing),
                                "gave up on a number that waits"
                            );
                            s.check_window();
                            let left = s.order.drain().count();
                            assert_eq!(s.queued, s.applied.len() + left);
                            return; // the session is over
                        }
                    }
                }
            }
        }
        s.check_window();
    }
});
