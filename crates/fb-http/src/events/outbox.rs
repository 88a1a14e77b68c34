//! A stream's send queue, bounded in bytes, and the writer that drains it into the socket.
//!
//! The session never waits for the client: it puts messages in the [`Outbox`] and learns at
//! once when the client is too far behind ([`Full`]). The [`Writer`] sends them one at a time;
//! a close request overtakes whatever is still queued, so a slow client is told why at once
//! (after the message being written, which the socket's buffer already holds), and a client
//! that does not even take the close frame is cut off after [`CLOSE_TIMEOUT`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures::{Sink, SinkExt};
use tokio::sync::{mpsc, oneshot};

/// How long a close frame may take to reach a client before the connection is dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The client has more than the limit waiting: it is too slow for this stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

struct Queued {
    message: Message,
    bytes: usize,
}

/// The session's end of the queue.
pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<Queued>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    close: oneshot::Sender<CloseFrame>,
}

/// The writer's end: owns the socket's sending half.
pub(crate) struct Writer<S> {
    sink: S,
    queue: mpsc::UnboundedReceiver<Queued>,
    queued_bytes: Arc<AtomicUsize>,
    close: oneshot::Receiver<CloseFrame>,
}

/// A queue holding at most `max_bytes` of messages (or one message of any size), and the writer
/// that sends them into `sink`.
pub(crate) fn channel<S>(sink: S, max_bytes: usize) -> (Outbox, Writer<S>) {
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = oneshot::channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            queue: queue_tx,
            queued_bytes: queued_bytes.clone(),
            max_bytes,
            close: close_tx,
        },
        Writer {
            sink,
            queue: queue_rx,
            queued_bytes,
            close: close_rx,
        },
    )
}

impl Outbox {
    /// Queues `message`, or refuses when the client is too far behind. A message always fits
    /// an empty queue, so one larger than the limit is sent rather than refused forever. A
    /// writer that stopped is not an error here: [`Outbox::writer_stopped`] reports it.
    pub(crate) fn push(&self, message: Message) -> Result<(), Full> {
        let bytes = match &message {
            Message::Text(text) => text.len(),
            Message::Binary(data) | Message::Ping(data) | Message::Pong(data) => data.len(),
            Message::Close(_) => 0,
        };
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued + bytes > self.max_bytes {
            return Err(Full);
        }
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        let _ = self.queue.send(Queued { message, bytes });
        Ok(())
    }

    /// Resolves when the writer has stopped (the client went away, or a send failed).
    pub(crate) async fn writer_stopped(&self) {
        self.queue.closed().await;
    }

    /// Ends the stream: with a close frame sent ahead of anything still queued, or, without
    /// one, by dropping the connection (a peer that stopped answering cannot read one).
    /// Dropping the outbox is the same as closing without a frame.
    pub(crate) fn close(self, frame: Option<CloseFrame>) {
        if let Some(frame) = frame {
            let _ = self.close.send(frame);
        }
    }
}

impl<S> Writer<S>
where
    S: Sink<Message> + Unpin,
{
    /// Sends queued messages until the session closes the stream or the client goes away.
    pub(crate) async fn run(mut self) {
        loop {
            let queued = tokio::select! {
                biased;
                frame = &mut self.close => return self.finish(frame.ok()).await,
                queued = self.queue.recv() => match queued {
                    Some(queued) => queued,
                    None => return,
                },
            };
            // A close request interrupts a send the client is not taking; the message stays
            // whole in the socket's buffer, ahead of the close frame.
            let sent = tokio::select! {
                biased;
                frame = &mut self.close => return self.finish(frame.ok()).await,
                sent = self.sink.send(queued.message) => sent,
            };
            self.queued_bytes.fetch_sub(queued.bytes, Ordering::AcqRel);
            if sent.is_err() {
                return;
            }
        }
    }

    async fn finish(mut self, frame: Option<CloseFrame>) {
        if let Some(frame) = frame {
            let close = self.sink.send(Message::Close(Some(frame)));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use futures::channel::mpsc as client;

    use super::*;

    fn text(n: usize) -> Message {
        Message::Text("x".repeat(n).into())
    }

    /// The client: a socket that takes one message and then only what is read from it.
    fn client_socket() -> (client::Sender<Message>, client::Receiver<Message>) {
        client::channel(0)
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_fills_the_queue_and_is_told_why() {
        let (socket, mut client) = client_socket();
        let (outbox, writer) = channel(socket, 1000);
        let writer = tokio::spawn(writer.run());
        // The writer takes what the socket accepts; the rest waits in the queue.
        let mut queued = 0;
        let full = loop {
            match outbox.push(text(100)) {
                Ok(()) => queued += 1,
                Err(full) => break full,
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(full, Full);
        assert!(
            (10..=13).contains(&queued),
            "{queued} messages of 100 bytes"
        );
        outbox.close(Some(CloseFrame {
            code: 1013,
            reason: "too slow".into(),
        }));
        // What the socket held, then the close frame, ahead of everything still queued.
        let mut received = Vec::new();
        while let Some(message) = client.next().await {
            received.push(message);
        }
        writer.await.unwrap();
        let Some(Message::Close(Some(frame))) = received.last() else {
            panic!("no close frame last: {received:?}");
        };
        assert_eq!(frame.code, 1013);
        assert!(received.len() < queued, "queued messages were dropped");
    }

    #[tokio::test]
    async fn a_reading_client_gets_everything_in_order() {
        let (socket, client) = client_socket();
        let (outbox, writer) = channel(socket, 250);
        let writer = tokio::spawn(writer.run());
        let reader = tokio::spawn(client.collect::<Vec<_>>());
        for i in 0..50 {
            let message = Message::Text(format!("{i:03}").into());
            // A reading client keeps the queue short; wait for room like a calm source would.
            while outbox.push(message.clone()).is_err() {
                tokio::task::yield_now().await;
            }
        }
        // One message larger than the whole limit still goes out on an empty queue.
        while outbox.push(text(1000)).is_err() {
            tokio::task::yield_now().await;
        }
        // Dropping the outbox abandons what is queued; wait until it is all out.
        while outbox.queued_bytes.load(Ordering::Acquire) > 0 {
            tokio::task::yield_now().await;
        }
        drop(outbox);
        writer.await.unwrap();
        let received = reader.await.unwrap();
        assert_eq!(received.len(), 51);
        assert_eq!(received[7], Message::Text("007".into()));
        assert_eq!(received[50], text(1000));
    }

    #[tokio::test]
    async fn the_session_learns_when_the_client_is_gone() {
        let (socket, client) = client_socket();
        let (outbox, writer) = channel(socket, 1000);
        drop(client);
        let writer = tokio::spawn(writer.run());
        outbox.push(text(10)).unwrap();
        outbox.writer_stopped().await;
        writer.await.unwrap();
    }
}
