//! Pipeline position: `… → alert → syslog` — the bounded in-memory queue that holds formatted
//! messages while the collector is away, and the seam (`Spool`) where the disk spool plugs in.

use std::collections::VecDeque;

pub use wwatchd_core::spool_format::QueuedMessage;

/// What a spool lost on its own, since the last [`Spool::take_losses`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolLosses {
    /// Messages thrown away, oldest first, to stay under the size cap.
    pub dropped: u64,
    /// Unreadable regions found (a torn write after a crash or power loss, or a damaged disk).
    /// Each one lost at least one message or half-written one.
    pub corrupt: u64,
}

/// Where messages go that the in-memory queue should not hold: the oldest message when the queue
/// overflows, everything while the collector is down (so a crash of the daemon loses nothing),
/// and whatever is left when the sink shuts down.
///
/// Ordering contract: everything in the spool is older than everything in the queue (only the
/// queue's oldest message is ever spilled, or the whole queue in order), so the sink delivers the
/// spool's messages first, in the order `front` yields them. An implementation must keep FIFO
/// order and must not hand out a message again after `pop_front`.
pub trait Spool: Send {
    /// Take ownership of `msg`. Give it back if it cannot be stored; the sink then keeps it in
    /// memory or counts it as dropped.
    fn push(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage>;
    /// The oldest stored message, if any.
    fn front(&mut self) -> Option<&QueuedMessage>;
    /// Forget the oldest message: it was delivered.
    fn pop_front(&mut self);
    /// Messages stored now.
    fn len(&self) -> u64;
    /// True when nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes the spool occupies now (0 for a spool that is not on disk).
    fn bytes(&self) -> u64 {
        0
    }
    /// Losses since the last call.
    fn take_losses(&mut self) -> SpoolLosses {
        SpoolLosses::default()
    }
    /// The last storage error since the last call, for operators (e.g. a full disk).
    fn take_error(&mut self) -> Option<String> {
        None
    }
    /// Make what was pushed and popped so far durable. The sink calls it about once a second
    /// while it runs, and at shutdown.
    fn sync(&mut self) {}
    /// Whether something pushed or popped is not durable yet: the idle sink thread sets a timer
    /// for [`Spool::sync`] only then.
    fn needs_sync(&self) -> bool {
        false
    }
}

/// FIFO of at most `capacity` messages; pushing into a full queue evicts the oldest.
#[derive(Debug)]
pub struct BoundedQueue {
    items: VecDeque<QueuedMessage>,
    capacity: usize,
}

impl BoundedQueue {
    /// `capacity` 0 is treated as 1: the message being sent needs a place to wait.
    pub fn new(capacity: usize) -> BoundedQueue {
        let capacity = capacity.max(1);
        BoundedQueue {
            items: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    /// Append; returns the evicted oldest message when the queue was full.
    pub fn push(&mut self, msg: QueuedMessage) -> Option<QueuedMessage> {
        let evicted = if self.items.len() >= self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(msg);
        evicted
    }

    /// Put back a message just taken with [`BoundedQueue::pop_front`] (its place is free).
    pub fn unpop(&mut self, msg: QueuedMessage) {
        self.items.push_front(msg);
    }

    pub fn front(&self) -> Option<&QueuedMessage> {
        self.items.front()
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.items.pop_front()
    }

    /// The messages, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.items.iter()
    }

    /// A push now evicts the oldest message.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wwatchd_core::syslog::MessageKind;

    fn m(i: u8) -> QueuedMessage {
        QueuedMessage {
            kind: MessageKind::Alert,
            bytes: vec![i],
        }
    }

    #[test]
    fn syslog_queue_evicts_oldest() {
        let mut q = BoundedQueue::new(2);
        assert_eq!(q.push(m(1)), None);
        assert_eq!(q.push(m(2)), None);
        assert_eq!(q.push(m(3)), Some(m(1)));
        assert_eq!(q.pop_front(), Some(m(2)));
        q.unpop(m(2));
        assert_eq!(q.pop_front(), Some(m(2)));
        assert_eq!(q.pop_front(), Some(m(3)));
        assert!(q.is_empty());
    }
}
