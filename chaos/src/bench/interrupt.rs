//! Ctrl-C or SIGTERM during a bench. The private broker is no child of the
//! bench (kafka.sh starts it in a session of its own), so the terminal's
//! SIGINT does not reach it, and an exit on a signal runs no destructor:
//! the brokers registered here are stopped (their data deleted, unless kept)
//! before the bench exits with 128 + the signal. The services, children in
//! the bench's process group, get the terminal's SIGINT themselves.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::processes::Broker;

/// The brokers running, and whether to keep each one's data.
static BROKERS: Mutex<Vec<(Broker, bool)>> = Mutex::new(Vec::new());
/// The signal received, 0 before one.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: all a signal handler may safely do here.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM (children start with the default disposition
/// again) and watches for them in a thread of its own.
pub fn stop_brokers_on_signal() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    std::thread::spawn(|| {
        loop {
            let signal = RECEIVED.load(Ordering::SeqCst);
            if signal != 0 {
                eprintln!("bench: signal {signal}: stopping the private broker");
                let brokers = BROKERS.lock().map(|b| b.clone()).unwrap_or_default();
                for (broker, keep_data) in brokers {
                    let _ = if keep_data {
                        broker.stop()
                    } else {
                        broker.reset()
                    };
                }
                std::process::exit(128 + signal);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// `broker` is stopped on a signal; its data deleted unless `keep_data`.
pub fn register(broker: &Broker, keep_data: bool) {
    if let Ok(mut brokers) = BROKERS.lock() {
        brokers.push((broker.clone(), keep_data));
    }
}

/// `broker` is stopped already.
pub fn unregister(broker: &Broker) {
    if let Ok(mut brokers) = BROKERS.lock() {
        brokers.retain(|(registered, _)| registered.state_dir != broker.state_dir);
    }
}
