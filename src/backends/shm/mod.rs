//! The shared-memory transport of issue 15 (SHARED.md): its building
//! blocks so far. A connection's bytes move through [`ring::Ring`]s that
//! live in a [`segment::Segment`] every process holding either end maps;
//! [`lock::SharedLock`] serialises two holders of one end (after fork);
//! [`conn`] has the stream calls on one end, and the listener.
//! Every word of a segment is untrusted: another process of the same user
//! can write anything there, and the worst it may cause is
//! [`Corrupt`], which ends the connections that segment carries.
#![deny(unsafe_code)]

pub mod anchor;
pub mod backend;
pub mod conn;
pub mod defer;
pub mod lock;
pub mod ring;
pub mod segment;

/// A segment's shared words make no sense (a counter out of range, a size
/// that does not fit, a lock held past any legitimate holder's time): the
/// connection it carries resets. Never a crash, never a wait without end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt;
