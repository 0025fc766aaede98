//! Pipeline position: `… → alert → syslog` — the bounded in-memory queue that holds formatted
//! messages while the collector is away, and the seam (`Spool`) where a disk spool plugs in.

use std::collections::VecDeque;

use super::format::MessageKind;

/// One formatted syslog message, without transport framing (no octet count, no trailing NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub kind: MessageKind,
    pub bytes: Vec<u8>,
}

/// Where messages go that the in-memory queue cannot hold: the oldest message when the queue
/// overflows, and whatever is left when the sink shuts down.
///
/// Ordering contract: everything in the spool is older than everything in the queue (only the
/// queue's oldest message is ever spilled), so the sink delivers the spool's messages first, in
/// the order `front` yields them. An implementation must keep FIFO order and must not hand out a
/// message again after `pop_front`.
pub trait Spool: Send {
    /// Take ownership of `msg`. Give it back if it cannot be stored; the sink then counts it as
    /// dropped.
    fn push(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage>;
    /// The oldest stored message, if any.
    fn front(&mut self) -> Option<&QueuedMessage>;
    /// Forget the oldest message: it was delivered.
    fn pop_front(&mut self);
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

    pub fn front(&self) -> Option<&QueuedMessage> {
        self.items.front()
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.items.pop_front()
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
        assert_eq!(q.pop_front(), Some(m(3)));
        assert!(q.is_empty());
    }
}
