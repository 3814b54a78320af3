//! Waiting on many sockets at once: the engines under poll/select
//! (`poll`) and epoll (`epoll`). The C layer checks pointers and converts
//! C types; these take safe slices and return `Result`.

#[cfg(feature = "std")]
pub mod epoll;
pub mod poll;
