//! What an accepted connection takes from its listener, whether the
//! connection arrived through the fragment path (`Frontend::incoming`) or
//! through a backend that keeps its bytes (`accept_shared`): Linux copies
//! the listener's socket, so its options are the child's first values.

use super::*;

impl Socket {
    /// Copies listener `l`'s options, kernel-option records, filter and
    /// SO_RCVBUF into this new, not yet reachable socket.
    pub(crate) fn inherit_from(&self, l: &Socket) {
        let (lo, _record) = {
            let lc = l.ctl.lock();
            #[cfg(feature = "std")]
            let record = super::kernel_opts::inherited(&lc.kernel_opts);
            #[cfg(not(feature = "std"))]
            let record = ();
            (lc.opts, record)
        };
        if lo.cork() {
            self.set_cork(true);
        }
        self.set_rcv_lowat(lo.rcvlowat());
        {
            let mut c = self.ctl.lock();
            c.opts = lo;
            self.records.sndbuf_is(c.opts.sndbuf());
            // Not the listener's: its own come from the backend.
            c.opts.set_peer_cred(None);
            #[cfg(feature = "std")]
            {
                // The SYN this connection stands for is kept for
                // TCP_SAVED_SYN when the listener asked (TCP_SAVE_SYN).
                c.opts.syn_saved = super::kernel_opts::int_value(
                    &_record,
                    IPPROTO_TCP,
                    super::saved_syn::TCP_SAVE_SYN,
                )
                .is_some_and(|v| v != 0);
                c.kernel_opts = _record;
            }
        }
        self.filter.inherit(&l.filter);
        // An accepted socket starts with its listener's SO_RCVBUF (and, as
        // on Linux, without autotuning); it is empty, so the size fits. Its
        // buffer is made only then (`Socket::rx`).
        if let Some(want) = lo.rcvbuf {
            if let Rx::Stream(csb) = self.rx() {
                self.set(F_RCVBUF_SET);
                let _ = csb.set_capacity(want);
            }
        }
    }
}
