//! The fair share of a global limiter across keys: deficit round robin.
//!
//! # Implementation details
//!
//! One request at a time holds the *turn*: the right to queue for the
//! global limiter's slots and rate. Everybody else waits in a queue of its
//! key (its *lane*), FIFO within the lane. When the turn is given back, the
//! next holder is picked by deficit round robin over the lanes with
//! someone waiting: the lane at the front of the ring is served while its
//! deficit lasts, its deficit being refilled with its weight each time it
//! comes round; then it goes to the back of the ring. Every request costs
//! 1, so a backlogged lane of weight `w` gets `w` turns per round, and a
//! lane that becomes backlogged joins the back of the ring: it is served
//! within one round, however long the others' backlogs are. A lane with
//! nothing queued is not in the ring and takes nothing; it is forgotten
//! (deficit and all) as soon as its queue empties.
//!
//! The turn is handed over directly: the picked waiter is marked granted
//! and woken, and nobody else can take the turn meanwhile. A granted
//! waiter that is dropped before it sees the grant passes the turn on, so
//! no turn is ever lost.
//!
//! An uncontended request takes the free turn and gives it back with one
//! lock each and no allocation; the lanes and waiters live in hash maps
//! that are only touched while someone waits.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::collections::HashMap;

use crate::sync::Mutex;

/// The turn scheduler of one `KeyedLimiter`.
pub(crate) struct Fair {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Someone holds the turn (or was granted it and has not seen it yet).
    held: bool,
    /// Lanes with someone waiting, by lane id.
    lanes: HashMap<usize, Lane>,
    /// The lanes in `lanes`, in round-robin order; the front is served.
    ring: VecDeque<usize>,
    /// Waiters by ticket.
    waiters: HashMap<u64, Waiting>,
    next_ticket: u64,
}

struct Lane {
    weight: u32,
    /// Turns this lane may still take in the current round.
    deficit: u32,
    /// Tickets, in arrival order.
    queue: VecDeque<u64>,
}

struct Waiting {
    waker: Waker,
    granted: bool,
}

impl State {
    fn is_free(&self) -> bool {
        !self.held && self.ring.is_empty()
    }

    /// Gives the turn to the next waiter by deficit round robin (or frees
    /// it); returns the waker to wake once the lock is released.
    fn pass(&mut self) -> Option<Waker> {
        let Some(&id) = self.ring.front() else {
            self.held = false;
            return None;
        };
        let lane = self.lanes.get_mut(&id).expect("a lane in the ring exists");
        if lane.deficit == 0 {
            lane.deficit = lane.weight;
        }
        lane.deficit -= 1;
        let ticket = lane
            .queue
            .pop_front()
            .expect("a lane in the ring has a waiter");
        if lane.queue.is_empty() {
            self.lanes.remove(&id);
            self.ring.pop_front();
        } else if lane.deficit == 0 {
            self.ring.rotate_left(1);
        }
        let waiting = self
            .waiters
            .get_mut(&ticket)
            .expect("a queued ticket waits");
        waiting.granted = true;
        self.held = true;
        // Taken, not cloned: a clone may run user code, and this runs under
        // the lock. A granted waiter needs no waker to see its grant.
        Some(core::mem::replace(
            &mut waiting.waker,
            Waker::noop().clone(),
        ))
    }

    /// Takes `ticket` out of `lane`'s queue (it was cancelled).
    fn unqueue(&mut self, id: usize, ticket: u64) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        lane.queue.retain(|&t| t != ticket);
        if lane.queue.is_empty() {
            self.lanes.remove(&id);
            self.ring.retain(|&l| l != id);
        }
    }
}

impl Fair {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
        }
    }

    /// Waits for the turn in lane `id` (of `weight`, used if the lane is
    /// new).
    pub(crate) fn turn(self: &Arc<Self>, id: usize, weight: u32) -> TurnWait {
        TurnWait {
            fair: Arc::clone(self),
            lane: id,
            weight: weight.max(1),
            ticket: None,
        }
    }

    /// Takes the turn if it is free and nobody waits for it.
    fn try_take(&self) -> bool {
        let mut state = self.state.lock();
        let free = state.is_free();
        state.held |= free;
        free
    }

    /// The turn, if it is free and nobody waits for it (for a request
    /// that must not wait).
    pub(crate) fn try_turn(self: &Arc<Self>) -> Option<Turn> {
        self.try_take().then(|| Turn {
            fair: Arc::clone(self),
        })
    }

    /// Gives the turn back: the next waiter gets it.
    fn give_back(&self) {
        let waker = self.state.lock().pass();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Lanes with someone waiting for the turn.
    #[cfg(test)]
    fn backlogged(&self) -> usize {
        self.state.lock().lanes.len()
    }
}

impl fmt::Debug for Fair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Fair")
            .field("held", &state.held)
            .field("backlogged_keys", &state.lanes.len())
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// Waits for the turn; resolves to the [`Turn`].
pub(crate) struct TurnWait {
    fair: Arc<Fair>,
    lane: usize,
    weight: u32,
    ticket: Option<u64>,
}

impl Future for TurnWait {
    type Output = Turn;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let this = &mut *self;
        if this.ticket.is_none() && this.fair.try_take() {
            return Poll::Ready(Turn {
                fair: Arc::clone(&this.fair),
            });
        }
        // Cloned before locking: a clone may panic or run user code.
        let waker = cx.waker().clone();
        let mut state = this.fair.state.lock();
        let Some(ticket) = this.ticket else {
            if state.is_free() {
                state.held = true;
                drop(state);
                drop(waker);
                return Poll::Ready(Turn {
                    fair: Arc::clone(&this.fair),
                });
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let weight = this.weight;
            let lane = state.lanes.entry(this.lane).or_insert_with(|| Lane {
                weight,
                deficit: 0,
                queue: VecDeque::new(),
            });
            lane.queue.push_back(ticket);
            if lane.queue.len() == 1 {
                state.ring.push_back(this.lane);
            }
            let granted = false;
            state.waiters.insert(ticket, Waiting { waker, granted });
            drop(state);
            this.ticket = Some(ticket);
            return Poll::Pending;
        };
        let waiting = state.waiters.get_mut(&ticket).expect("our ticket waits");
        if waiting.granted {
            let waiting = state.waiters.remove(&ticket);
            drop(state);
            drop((waiting, waker));
            this.ticket = None;
            return Poll::Ready(Turn {
                fair: Arc::clone(&this.fair),
            });
        }
        let old = core::mem::replace(&mut waiting.waker, waker);
        drop(state);
        drop(old);
        Poll::Pending
    }
}

impl Drop for TurnWait {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else {
            return;
        };
        let (waiting, next) = {
            let mut state = self.fair.state.lock();
            let waiting = state.waiters.remove(&ticket);
            let next = match &waiting {
                // Granted but never seen: pass the turn on.
                Some(w) if w.granted => state.pass(),
                _ => {
                    state.unqueue(self.lane, ticket);
                    None
                }
            };
            (waiting, next)
        };
        drop(waiting);
        if let Some(next) = next {
            next.wake();
        }
    }
}

/// The turn: the right to queue for the global limiter. Dropping it gives
/// it to the next waiter.
pub(crate) struct Turn {
    fair: Arc<Fair>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.fair.give_back();
    }
}

#[cfg(test)]
mod tests {
    use alloc::sync::Arc;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Poll, Waker};

    use super::{Fair, Turn, TurnWait};

    fn poll(wait: &mut TurnWait) -> Option<Turn> {
        match Pin::new(wait).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(turn) => Some(turn),
            Poll::Pending => None,
        }
    }

    /// Lanes 1 (weight 1) and 2 (weight 2), 4 waiters each, behind a held
    /// turn: the turns go 1, 2, 2, 1, 2, 2, 1, 1 (deficit round robin), and
    /// a dropped holder-to-be passes the turn on.
    #[test]
    fn turns_go_round_by_weight() {
        let fair = Arc::new(Fair::new());
        let held = poll(&mut fair.turn(0, 1)).expect("the turn is free");
        let mut waits: Vec<(usize, TurnWait)> = [1, 2]
            .iter()
            .flat_map(|&lane| (0..4).map(move |_| lane))
            .map(|lane| (lane, fair.turn(lane, lane as u32)))
            .collect();
        for (_, wait) in &mut waits {
            assert!(poll(wait).is_none());
        }
        assert_eq!(fair.backlogged(), 2);
        drop(held);
        let mut order = Vec::new();
        while !waits.is_empty() {
            let i = waits
                .iter_mut()
                .position(|(_, w)| poll(w).is_some())
                .expect("someone holds the turn");
            order.push(waits.remove(i).0); // its turn is dropped at once
        }
        assert_eq!(order, [1, 2, 2, 1, 2, 2, 1, 1]);
        assert_eq!(fair.backlogged(), 0);

        // Chosen, then dropped before it polls: the turn goes on.
        let held = poll(&mut fair.turn(0, 1)).unwrap();
        let mut chosen = fair.turn(1, 1);
        let mut next = fair.turn(2, 1);
        assert!(poll(&mut chosen).is_none() && poll(&mut next).is_none());
        drop(held); // hands the turn to `chosen`
        drop(chosen);
        assert!(poll(&mut next).is_some());
        assert!(
            poll(&mut fair.turn(3, 1)).is_some(),
            "the turn is free again"
        );
    }
}
