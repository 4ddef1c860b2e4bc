//! The expiry timer: a task that sleeps until the engine's next deadline and then sweeps.

use std::sync::Weak;
use std::time::Duration;

use crate::store::Inner;

/// Runs until the store is closed or dropped. Holds only a weak reference while it sleeps, so
/// it never keeps a store alive.
pub(crate) async fn run(inner: Weak<Inner>) {
    loop {
        let (wait, wake) = {
            let Some(inner) = inner.upgrade() else { return };
            if inner.is_closed() {
                return;
            }
            let wait = inner
                .next_deadline()
                .map(|deadline| Duration::from_millis(inner.clock.now().millis_until(deadline)));
            (wait, inner.timer.clone())
        };
        match wait {
            Some(wait) => {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.expire_due();
    }
}
