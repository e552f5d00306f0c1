//! SIGINT and SIGTERM as a request to stop: `apply` and `run` finish the batch in flight,
//! record it and exit 0, instead of dying mid-write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a stop was asked for; listening starts when it is made.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    asked: tokio::sync::watch::Receiver<bool>,
}

impl Stop {
    /// Listens for SIGINT and SIGTERM on `runtime` from now on.
    pub fn listen(runtime: &tokio::runtime::Runtime) -> Stop {
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, asked) = tokio::sync::watch::channel(false);
        let set = flag.clone();
        // Entered so that the handlers are installed before this returns.
        let _entered = runtime.enter();
        let signals = signals();
        runtime.spawn(async move {
            signals.await;
            tracing::info!("stop requested");
            set.store(true, Ordering::SeqCst);
            let _ = tx.send(true);
        });
        Stop { flag, asked }
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag the executor checks at each batch boundary.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Resolves once a stop is asked for.
    pub async fn asked(&mut self) {
        let _ = self.asked.wait_for(|asked| *asked).await;
    }
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is called.
fn signals() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
