//! Redis pub/sub: a server-wide broker of channels and patterns (PUBLISH, SUBSCRIBE,
//! PSUBSCRIBE). Messages are not stored: a message reaches the clients subscribed when it is
//! published, as in Redis.
//!
//! Each subscribed connection has a mailbox. Publishing never waits on a subscriber: it queues
//! the message and counts its bytes against the mailbox's limit. A subscriber that falls that
//! far behind (it stopped reading, or reads slower than messages arrive) is dropped from the
//! broker and its connection closed, like Redis's client-output-buffer-limit for pubsub.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use super::{glob, reply};

/// Most bytes of messages a subscriber may have waiting (Redis's pubsub hard limit).
pub(super) const MAILBOX_LIMIT: usize = 32 << 20;

/// One published message, shared by every mailbox it goes to.
#[derive(Debug)]
pub(super) struct Message {
    pub(super) channel: Arc<[u8]>,
    pub(super) payload: Arc<[u8]>,
    /// The pattern that matched, for a `pmessage`.
    pub(super) pattern: Option<Arc<[u8]>>,
}

impl Message {
    fn size(&self) -> usize {
        self.channel.len() + self.payload.len() + self.pattern.as_ref().map_or(0, |p| p.len()) + 64
    }

    /// The push a subscriber receives: `message` or `pmessage`.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match &self.pattern {
            Some(pattern) => {
                reply::array(out, 4);
                reply::bulk(out, b"pmessage");
                reply::bulk(out, pattern);
            }
            None => {
                reply::array(out, 3);
                reply::bulk(out, b"message");
            }
        }
        reply::bulk(out, &self.channel);
        reply::bulk(out, &self.payload);
    }
}

/// A subscriber's queue, as the broker sees it.
#[derive(Debug)]
pub(super) struct Mailbox {
    id: u64,
    tx: mpsc::UnboundedSender<Arc<Message>>,
    /// Bytes queued and not yet taken by the connection.
    pending: AtomicUsize,
    /// Set when the mailbox overflowed: the connection closes.
    overflowed: AtomicBool,
    /// Wakes the connection if it is blocked writing to a client that stopped reading.
    pub(super) dropped: Notify,
    limit: usize,
}

impl Mailbox {
    /// Queues a message unless that would pass the limit; false when it overflowed.
    fn offer(&self, message: &Arc<Message>) -> bool {
        let size = message.size();
        let before = self.pending.fetch_add(size, Ordering::AcqRel);
        if before + size > self.limit || self.tx.send(message.clone()).is_err() {
            self.pending.fetch_sub(size, Ordering::AcqRel);
            self.overflowed.store(true, Ordering::Release);
            self.dropped.notify_one();
            return false;
        }
        true
    }

    /// The connection took a message off the queue.
    pub(super) fn taken(&self, message: &Message) {
        self.pending.fetch_sub(message.size(), Ordering::AcqRel);
    }

    pub(super) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// Channels and patterns with their subscribers.
#[derive(Debug, Default)]
pub(super) struct Broker {
    channels: HashMap<Box<[u8]>, HashMap<u64, Arc<Mailbox>>>,
    patterns: HashMap<Box<[u8]>, HashMap<u64, Arc<Mailbox>>>,
}

impl Broker {
    /// Delivers to every subscriber of `channel` and of every matching pattern; returns how
    /// many received it. Subscribers that overflow are dropped.
    pub(super) fn publish(&mut self, channel: &[u8], payload: &[u8]) -> usize {
        let channel_arc: Arc<[u8]> = Arc::from(channel);
        let payload: Arc<[u8]> = Arc::from(payload);
        let mut delivered = 0;
        let mut dropped = Vec::new();
        if let Some(subs) = self.channels.get(channel) {
            let message = Arc::new(Message {
                channel: channel_arc.clone(),
                payload: payload.clone(),
                pattern: None,
            });
            for mailbox in subs.values() {
                if mailbox.offer(&message) {
                    delivered += 1;
                } else {
                    dropped.push(mailbox.id);
                }
            }
        }
        for (pattern, subs) in &self.patterns {
            if !glob::matches(pattern, channel) {
                continue;
            }
            let message = Arc::new(Message {
                channel: channel_arc.clone(),
                payload: payload.clone(),
                pattern: Some(Arc::from(&pattern[..])),
            });
            for mailbox in subs.values() {
                if mailbox.offer(&message) {
                    delivered += 1;
                } else {
                    dropped.push(mailbox.id);
                }
            }
        }
        for id in dropped {
            self.remove_client(id);
        }
        delivered
    }

    fn add(
        map: &mut HashMap<Box<[u8]>, HashMap<u64, Arc<Mailbox>>>,
        name: &[u8],
        mailbox: &Arc<Mailbox>,
    ) {
        map.entry(Box::from(name))
            .or_default()
            .insert(mailbox.id, mailbox.clone());
    }

    fn remove(map: &mut HashMap<Box<[u8]>, HashMap<u64, Arc<Mailbox>>>, name: &[u8], id: u64) {
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Forgets every subscription of one client (it disconnected or overflowed).
    pub(super) fn remove_client(&mut self, id: u64) {
        for map in [&mut self.channels, &mut self.patterns] {
            map.retain(|_, subs| {
                subs.remove(&id);
                !subs.is_empty()
            });
        }
    }

    /// PUBSUB-style counts for INFO.
    pub(super) fn counts(&self) -> (usize, usize) {
        (self.channels.len(), self.patterns.len())
    }
}

/// One connection's subscriptions.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) rx: mpsc::UnboundedReceiver<Arc<Message>>,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
}

impl Subscriber {
    pub(super) fn new(id: u64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Subscriber {
            mailbox: Arc::new(Mailbox {
                id,
                tx,
                pending: AtomicUsize::new(0),
                overflowed: AtomicBool::new(false),
                dropped: Notify::new(),
                limit: MAILBOX_LIMIT,
            }),
            rx,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
        }
    }

    /// Subscriptions in total: what (un)subscribe replies count, and whether the connection is
    /// still in subscribed mode.
    pub(super) fn total(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// SUBSCRIBE / PSUBSCRIBE: one confirmation per name.
    pub(super) fn subscribe<'a>(
        &mut self,
        broker: &Mutex<Broker>,
        pattern: bool,
        names: impl Iterator<Item = &'a [u8]>,
        out: &mut Vec<u8>,
    ) {
        let mut broker = broker.lock();
        for name in names {
            let (set, map, kind): (_, _, &[u8]) = if pattern {
                (&mut self.patterns, &mut broker.patterns, b"psubscribe")
            } else {
                (&mut self.channels, &mut broker.channels, b"subscribe")
            };
            if set.insert(name.to_vec()) {
                Broker::add(map, name, &self.mailbox);
            }
            confirm(out, kind, Some(name), self.total());
        }
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE: the names given, or every one when none is.
    pub(super) fn unsubscribe<'a>(
        &mut self,
        broker: &Mutex<Broker>,
        pattern: bool,
        names: impl ExactSizeIterator<Item = &'a [u8]>,
        out: &mut Vec<u8>,
    ) {
        let kind: &[u8] = if pattern {
            b"punsubscribe"
        } else {
            b"unsubscribe"
        };
        let names: Vec<Vec<u8>> = if names.len() == 0 {
            let set = if pattern {
                &self.patterns
            } else {
                &self.channels
            };
            set.iter().cloned().collect()
        } else {
            names.map(<[u8]>::to_vec).collect()
        };
        if names.is_empty() {
            confirm(out, kind, None, self.total());
            return;
        }
        let mut broker = broker.lock();
        for name in names {
            let (set, map) = if pattern {
                (&mut self.patterns, &mut broker.patterns)
            } else {
                (&mut self.channels, &mut broker.channels)
            };
            if set.remove(&name) {
                Broker::remove(map, &name, self.mailbox.id);
            }
            confirm(out, kind, Some(&name), self.total());
        }
    }
}

fn confirm(out: &mut Vec<u8>, kind: &[u8], name: Option<&[u8]>, total: usize) {
    reply::array(out, 3);
    reply::bulk(out, kind);
    match name {
        Some(name) => reply::bulk(out, name),
        None => reply::nil(out),
    }
    reply::int(out, i64::try_from(total).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_channels_and_patterns() {
        let broker = Mutex::new(Broker::default());
        let mut a = Subscriber::new(1);
        let mut b = Subscriber::new(2);
        let mut out = Vec::new();
        a.subscribe(&broker, false, [&b"news"[..]].into_iter(), &mut out);
        b.subscribe(&broker, true, [&b"n*"[..]].into_iter(), &mut out);
        assert_eq!(broker.lock().publish(b"news", b"hi"), 2);
        assert_eq!(broker.lock().publish(b"other", b"hi"), 0);
        let got = a.rx.try_recv().expect("a got it");
        assert_eq!(&got.payload[..], b"hi");
        let got = b.rx.try_recv().expect("b got it");
        assert_eq!(got.pattern.as_deref(), Some(&b"n*"[..]));
        a.unsubscribe(&broker, false, std::iter::empty(), &mut out);
        assert_eq!(broker.lock().publish(b"news", b"again"), 1);
    }

    #[test]
    fn a_subscriber_that_stops_reading_is_dropped_at_its_limit() {
        let broker = Mutex::new(Broker::default());
        let mut slow = Subscriber::new(7);
        let mut out = Vec::new();
        slow.subscribe(&broker, false, [&b"c"[..]].into_iter(), &mut out);
        let payload = vec![0u8; 1 << 20];
        let mut delivered = 0;
        for _ in 0..(MAILBOX_LIMIT >> 20) + 2 {
            delivered += broker.lock().publish(b"c", &payload);
        }
        assert!(delivered < (MAILBOX_LIMIT >> 20) + 2);
        assert!(slow.mailbox.overflowed());
        assert_eq!(broker.lock().counts(), (0, 0), "dropped from the broker");
    }
}
