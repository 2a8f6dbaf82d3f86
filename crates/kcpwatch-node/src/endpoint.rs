//! `NativeEndpoint`: one socket and its I/O thread, as seen from JavaScript.
//!
//! JavaScript gets one notification per empty -> non-empty edge of the record queue (a
//! threadsafe function with no arguments), then takes all records with `takeRecords()`. Sends
//! arrive packed, one call per event-loop turn. An environment cleanup hook stops and joins the
//! I/O thread when the process or worker exits without `close()`: a producer thread still
//! running at teardown would abort Node.
//!
//! `close()` frees the runtime at once (socket, waker, threads, log ring), keeping only the
//! final records for `takeRecords()`/`takeEvents()`: the JavaScript object may live on for
//! long, and a program that reconnects in a loop must not run out of descriptors or memory
//! waiting for the garbage collector.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kcpwatch::Runtime;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env};

use crate::errors::{self, to_js, Result};
use crate::options::{self, EndpointOptions, SessionOptions};

#[cfg(unix)]
mod loop_watcher;
mod stage_trace;

/// A JavaScript callback of no arguments, callable from the I/O thread. Not callee-handled: the
/// callbacks only take records, and a throw there is a bug in the library.
type Notify = ThreadsafeFunction<(), (), (), Status, false>;

/// The JavaScript side of a [`Notify`]. `#[napi]` signatures spell it out: napi writes an
/// alias's name into native.d.ts, which declares no such type.
type Callback<'a> = Function<'a, (), ()>;

/// The address an endpoint is bound to.
#[napi(object)]
pub struct AddressInfo {
    pub address: String,
    pub family: String,
    pub port: u32,
}

/// A connection opened with `connect`.
#[napi(object)]
pub struct ConnectedInfo {
    pub handle: u32,
    pub uid: String,
    pub conv: u32,
    pub local_address: String,
    pub local_port: u32,
    pub remote_address: String,
    pub remote_port: u32,
}

/// One connection's counters so far.
#[napi(object)]
pub struct NativeConnectionStats {
    pub duration_ms: f64,
    /// Datagrams accepted by the guard, and their bytes.
    pub datagrams_in: f64,
    pub bytes_in: f64,
    /// Datagrams produced, and their bytes.
    pub datagrams_out: f64,
    pub bytes_out: f64,
    pub payload_bytes_in: f64,
    pub payload_bytes_out: f64,
    pub messages_in: f64,
    pub messages_out: f64,
    pub guard_drops: f64,
    pub srtt_ms: u32,
    pub rttvar_ms: u32,
    pub rto_ms: u32,
    pub rtt_min_ms: u32,
    pub rtt_max_ms: u32,
    pub in_segs: f64,
    pub out_segs: f64,
    pub in_push_segs: f64,
    pub out_push_segs: f64,
    pub retrans_segs: f64,
    pub fast_retrans_segs: f64,
    pub lost_segs: f64,
    pub repeat_segs: f64,
    pub acks_sent: f64,
    pub acks_received: f64,
    pub window_probes_sent: f64,
    pub window_probes_received: f64,
    /// Secure mode: unreliable datagrams sent, received (handed to JavaScript) and dropped
    /// (stale, or a full queue).
    pub unreliable_sent: f64,
    pub unreliable_received: f64,
    pub unreliable_dropped: f64,
}

fn address_info(addr: SocketAddr) -> AddressInfo {
    AddressInfo {
        address: addr.ip().to_string(),
        family: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        port: u32::from(addr.port()),
    }
}

struct Live {
    runtime: Arc<Runtime>,
    /// Dropped on close so the threadsafe function stops keeping the event loop alive.
    notify: Arc<Mutex<Option<Notify>>>,
    notify_events: Arc<Mutex<Option<Notify>>>,
    exit_hook: Option<ExitHook>,
    /// The event loop's watcher on the socket, which the I/O thread hands reception to while
    /// it sleeps; `None` where there is none (reception stays with the I/O thread).
    #[cfg(unix)]
    watcher: Option<loop_watcher::Watcher>,
}

/// The environment cleanup hook of one open endpoint: it shuts the runtime down when the
/// process or worker exits without `close()`.
///
/// Registered by hand because napi-rs's `remove_env_cleanup_hook` never frees the data it
/// boxed in `add_env_cleanup_hook`: that data is an `Arc<Runtime>`, so every closed endpoint
/// would keep its waker (an eventfd) and its log ring for the life of the process.
struct ExitHook {
    /// Owned by this hook until `remove` frees it, or by Node once the hook has run.
    data: *mut Arc<Runtime>,
}

unsafe extern "C" fn shutdown_at_exit(data: *mut c_void) {
    // SAFETY: `data` is the `Box::into_raw` of `ExitHook::add`. Node calls a hook at most once
    // and never after `napi_remove_env_cleanup_hook` succeeded, which is the only other place
    // that frees it.
    let runtime = unsafe { Box::from_raw(data.cast::<Arc<Runtime>>()) };
    runtime.shutdown();
}

impl ExitHook {
    fn add(env: &Env, runtime: Arc<Runtime>) -> napi::Result<Self> {
        let data = Box::into_raw(Box::new(runtime));
        // SAFETY: a live env on its own thread; `data` stays valid until the hook runs or is
        // removed (see `shutdown_at_exit`).
        let status = unsafe {
            sys::napi_add_env_cleanup_hook(env.raw(), Some(shutdown_at_exit), data.cast())
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not registered, so still ours alone.
            drop(unsafe { Box::from_raw(data) });
            return Err(Error::new(
                Status::from(status),
                "cannot register the endpoint's exit hook",
            ));
        }
        Ok(Self { data })
    }

    /// Unregisters the hook and frees its reference to the runtime.
    fn remove(self, env: &Env) -> napi::Result<()> {
        // SAFETY: the same (function, data) pair `add` registered, on the env's thread.
        let status = unsafe {
            sys::napi_remove_env_cleanup_hook(env.raw(), Some(shutdown_at_exit), self.data.cast())
        };
        if status != sys::Status::napi_ok {
            // Possibly still registered: leaking one `Arc` beats Node freeing it twice.
            return Err(Error::new(
                Status::from(status),
                "cannot remove the endpoint's exit hook",
            ));
        }
        // SAFETY: removed, so Node will never run it and nothing else holds `data`.
        drop(unsafe { Box::from_raw(self.data) });
        Ok(())
    }
}

/// What `close()` keeps of a runtime: the records published during shutdown, until taken.
#[derive(Default)]
struct Leftover {
    records: Vec<u8>,
    events: Vec<u8>,
    /// The counters the runtime ended with, in `STATS` order.
    stats: Option<Vec<f64>>,
}

/// A runtime's counters as `stats()` hands them over: in `STATS` order.
fn stats_values(s: &kcpwatch::RuntimeStats) -> Vec<f64> {
    kcpwatch::stats::STATS
        .iter()
        .map(|field| (field.read)(s))
        .collect()
}

/// One UDP socket with its I/O thread.
#[napi]
pub struct NativeEndpoint {
    live: Option<Live>,
    /// After close: the final records, the only part of the runtime still needed.
    leftover: Leftover,
    local: SocketAddr,
    /// Secure mode, server: the public halves of its static keys.
    public_keys: Vec<[u8; 32]>,
}

/// A threadsafe function with no arguments, and the closure that calls it from a Rust thread
/// for as long as it exists.
fn notifier(
    callback: &Callback<'_>,
) -> napi::Result<(Arc<Mutex<Option<Notify>>>, kcpwatch::runtime::Notify)> {
    let tsfn: Notify = callback
        .build_threadsafe_function()
        .callee_handled::<false>()
        .build()?;
    let slot = Arc::new(Mutex::new(Some(tsfn)));
    let for_thread = slot.clone();
    let call = Box::new(move || {
        if let Ok(guard) = for_thread.lock() {
            if let Some(tsfn) = guard.as_ref() {
                tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    });
    Ok((slot, call))
}

/// Node's `napi_ref_threadsafe_function`/`napi_unref_threadsafe_function`: whether a pending
/// notification keeps the event loop alive. napi-rs 3 deprecates its wrappers in favour of
/// cloning for reference counting, which is another matter; `ref()`/`unref()` need Node's.
#[allow(deprecated)]
fn keep_alive(tsfn: &mut Notify, env: &Env, keep: bool) -> napi::Result<()> {
    if keep {
        tsfn.refer(env)
    } else {
        tsfn.unref(env)
    }
}

fn start(
    env: Env,
    options: EndpointOptions,
    on_records: Callback<'_>,
    on_events: Callback<'_>,
    remote: Option<SocketAddr>,
) -> Result<NativeEndpoint> {
    let config = options::runtime_config(&options, remote.is_none())?;
    let public_keys = options::public_keys(&config);
    #[cfg(unix)]
    let on_records_raw = napi::JsValue::raw(&on_records);
    let (notify, callback) = notifier(&on_records).map_err(errors::napi)?;
    let (notify_events, events_callback) = notifier(&on_events).map_err(errors::napi)?;
    // The events notification must not keep the process alive by itself: records do that
    // while the endpoint is open.
    if let Ok(mut guard) = notify_events.lock() {
        if let Some(tsfn) = guard.as_mut() {
            keep_alive(tsfn, &env, false).map_err(errors::napi)?;
        }
    }
    let runtime = match remote {
        Some(remote) => Runtime::start_client(remote, config, callback, events_callback),
        None => Runtime::start(config, callback, events_callback),
    }
    .map_err(|e| errors::throw_runtime(&env, e))?;
    let runtime = Arc::new(runtime);
    // Registered after the threadsafe function, so it runs before Node finalises it (cleanup
    // hooks run in reverse order of registration).
    let exit_hook = ExitHook::add(&env, runtime.clone()).map_err(errors::napi)?;
    // After the exit hook, so that at teardown it closes before the runtime shuts down.
    #[cfg(unix)]
    let watcher = loop_watcher::Watcher::start(&env, &runtime, on_records_raw);
    let local = runtime.local_addr();
    Ok(NativeEndpoint {
        live: Some(Live {
            runtime,
            notify,
            notify_events,
            exit_hook: Some(exit_hook),
            #[cfg(unix)]
            watcher,
        }),
        leftover: Leftover::default(),
        local,
        public_keys,
    })
}

#[napi]
impl NativeEndpoint {
    /// Binds a server endpoint. `onRecords` is called (with no arguments) whenever records
    /// become available.
    /// `onEvents` is called (with no arguments) whenever security records for JavaScript
    /// become available (see `setEventDelivery`).
    #[napi(factory)]
    pub fn listen(
        env: Env,
        options: EndpointOptions,
        on_records: Function<'_, (), ()>,
        on_events: Function<'_, (), ()>,
    ) -> Result<Self> {
        start(env, options, on_records, on_events, None)
    }

    /// Binds a client endpoint on the interface that routes to the remote address.
    #[napi(factory)]
    pub fn client(
        env: Env,
        options: EndpointOptions,
        remote_address: String,
        remote_port: u32,
        on_records: Function<'_, (), ()>,
        on_events: Function<'_, (), ()>,
    ) -> Result<Self> {
        let remote = SocketAddr::new(options::ip(&remote_address)?, options::port(remote_port)?);
        start(env, options, on_records, on_events, Some(remote))
    }

    fn runtime(&self) -> Result<&Arc<Runtime>> {
        self.live
            .as_ref()
            .map(|l| &l.runtime)
            .ok_or_else(|| to_js(kcpwatch::RuntimeError::Closed))
    }

    /// Secure mode, server: the public keys of its static keys (clients pin one).
    #[napi]
    pub fn public_keys(&self) -> Vec<Buffer> {
        self.public_keys.iter().map(|k| k.to_vec().into()).collect()
    }

    /// The bound address.
    #[napi]
    pub fn address(&self) -> AddressInfo {
        address_info(self.local)
    }

    /// Opens a connection. Raw mode: no handshake, data may flow at once. Secure mode: the
    /// handshake starts (`conv` is ignored, the server assigns one); an `Established` or
    /// `ConnectFailed` record follows, and `token` goes to the server's `authenticate`.
    #[napi]
    pub fn connect(
        &self,
        remote_address: String,
        remote_port: u32,
        conv: u32,
        session: Option<SessionOptions>,
        token: Option<Buffer>,
    ) -> Result<ConnectedInfo> {
        let remote = SocketAddr::new(options::ip(&remote_address)?, options::port(remote_port)?);
        let session = session.as_ref().map(options::session_config).transpose()?;
        let token = token.map(|t| t.to_vec()).unwrap_or_default();
        let info = self
            .runtime()?
            .connect(remote, conv, token, session)
            .map_err(to_js)?;
        Ok(ConnectedInfo {
            handle: info.handle,
            uid: info.uid,
            conv: info.conv,
            local_address: info.local.ip().to_string(),
            local_port: u32::from(info.local.port()),
            remote_address: info.remote.ip().to_string(),
            remote_port: u32::from(info.remote.port()),
        })
    }

    /// Answers an authentication request record: its id and whether the token is accepted,
    /// with the user id every record of an accepted connection carries (at most 128 bytes of
    /// UTF-8; one call per authentication). An answer after the timeout, or a second one, is
    /// ignored.
    #[napi]
    pub fn resolve_auth(&self, id: f64, accept: bool, user: Option<String>) -> Result<()> {
        if !(id >= 0.0 && id.fract() == 0.0) {
            return Err(errors::invalid(format!(
                "auth request id must be a non-negative integer, got {id}"
            )));
        }
        let runtime = self.runtime()?;
        match user.filter(|_| accept) {
            Some(user) => {
                let user = kcpwatch_proto::events::UserId::new(&user).map_err(errors::invalid)?;
                runtime.resolve_auth_as(id as u64, user)
            }
            None => runtime.resolve_auth(id as u64, accept),
        }
        .map_err(to_js)
    }

    /// Refuses an authentication request with the application's reason code (1..=65535),
    /// which the client receives in the REJECT (`KcpAuthRejectedError.appCode`).
    #[napi]
    pub fn reject_auth(&self, id: f64, app_code: u32) -> Result<()> {
        if !(id >= 0.0 && id.fract() == 0.0) {
            return Err(errors::invalid(format!(
                "auth request id must be a non-negative integer, got {id}"
            )));
        }
        let code = u16::try_from(app_code)
            .ok()
            .filter(|c| *c != 0)
            .ok_or_else(|| {
                errors::invalid(format!(
                    "an authentication refusal code must be an integer in 1..65535, got {app_code}"
                ))
            })?;
        self.runtime()?.reject_auth(id as u64, code).map_err(to_js)
    }

    /// Queues a packed batch of messages (see `kcpwatch::Runtime::send_batch`).
    #[napi]
    pub fn send_batch(&self, batch: Buffer) -> Result<()> {
        self.runtime()?.send_batch(&batch).map_err(to_js)
    }

    /// Queues a packed batch of unreliable datagrams (see `kcpwatch::datagram_batch`); returns
    /// the bytes of datagram batches the I/O thread has not applied yet, this one included.
    #[napi]
    pub fn send_datagram_batch(&self, batch: Buffer) -> Result<u32> {
        let backlog = self
            .runtime()?
            .send_datagram_batch(batch.to_vec())
            .map_err(to_js)?;
        Ok(backlog.min(u32::MAX as usize) as u32)
    }

    /// Bytes of datagram batches the I/O thread has not applied yet (0 once closed).
    #[napi]
    pub fn datagram_backlog(&self) -> u32 {
        self.live.as_ref().map_or(0, |l| {
            l.runtime.datagram_backlog().min(u32::MAX as usize) as u32
        })
    }

    /// Closes one connection gracefully; with `code` (1..=65535) and `text`, a secure
    /// session's DISCONNECT carries the application's close code and text to the peer.
    #[napi]
    pub fn close_connection(
        &self,
        handle: u32,
        code: Option<u32>,
        text: Option<String>,
    ) -> Result<()> {
        match code {
            None | Some(0) => self.runtime()?.close_connection(handle).map_err(to_js),
            Some(code) => {
                let code = u16::try_from(code).map_err(|_| {
                    errors::invalid(format!("close code must be at most 65535, got {code}"))
                })?;
                let close = kcpwatch_proto::AppClose::new(code, text.as_deref().unwrap_or(""));
                self.runtime()?
                    .close_connection_with(handle, close)
                    .map_err(to_js)
            }
        }
    }

    /// Closes every connection gracefully with `shutdown` and accepts no new ones: queued
    /// data keeps flowing for at most `lingerMs` (each connection's own linger when omitted).
    /// Returns at once; the close records follow. `close()` ends whatever is left.
    #[napi]
    pub fn close_all(&self, linger_ms: Option<u32>) -> Result<()> {
        self.runtime()?.close_all(linger_ms).map_err(to_js)
    }

    /// Makes the next engine call of a connection panic (fault drills and tests).
    #[napi]
    pub fn inject_fault(&self, handle: u32) -> Result<()> {
        self.runtime()?.inject_fault(handle).map_err(to_js)
    }

    /// Takes every record published so far, or `null` when there is none.
    #[napi]
    pub fn take_records(&mut self) -> Option<Buffer> {
        let records = match &self.live {
            Some(live) => {
                #[cfg(unix)]
                if let Some(watcher) = &live.watcher {
                    watcher.records_taken();
                }
                live.runtime.take_records()
            }
            None => std::mem::take(&mut self.leftover.records),
        };
        (!records.is_empty()).then(|| records.into())
    }

    /// Starts or stops handing security records to JavaScript. No effect once closed.
    #[napi]
    pub fn set_event_delivery(&self, enabled: bool) {
        if let Some(live) = &self.live {
            live.runtime.set_event_delivery(enabled);
        }
    }

    /// Takes the security records waiting for JavaScript (canonical NDJSON), or `null`.
    #[napi]
    pub fn take_events(&mut self) -> Option<Buffer> {
        let lines = match &self.live {
            Some(live) => live.runtime.take_events(),
            None => std::mem::take(&mut self.leftover.events),
        };
        (!lines.is_empty()).then(|| lines.into())
    }

    /// Stops or resumes the log thread (drills and tests of a stalled log consumer). No effect
    /// once closed.
    #[napi]
    pub fn pause_event_consumer(&self, paused: bool) {
        if let Some(live) = &self.live {
            live.runtime.pause_event_consumer(paused);
        }
    }

    /// The counters, one value per field of `kcpwatch::stats::STATS`, in its order (a flag as
    /// 0 or 1): `statsFromValues` (src/generated/stats.ts) names them.
    #[napi]
    pub fn stats(&self) -> Result<Vec<f64>> {
        if self.live.is_none() {
            if let Some(stats) = &self.leftover.stats {
                return Ok(stats.clone());
            }
        }
        let s = self.runtime()?.stats().map_err(to_js)?;
        Ok(stats_values(&s))
    }

    /// One live connection's counters so far, or `null` for an unknown or closed handle.
    #[napi]
    pub fn connection_stats(&self, handle: u32) -> Result<Option<NativeConnectionStats>> {
        let Some(c) = self.runtime()?.connection_stats(handle).map_err(to_js)? else {
            return Ok(None);
        };
        let e = &c.engine;
        Ok(Some(NativeConnectionStats {
            duration_ms: c.duration_ms as f64,
            datagrams_in: c.datagrams_in as f64,
            bytes_in: c.bytes_in as f64,
            datagrams_out: c.datagrams_out as f64,
            bytes_out: c.bytes_out as f64,
            payload_bytes_in: c.payload_bytes_in as f64,
            payload_bytes_out: c.payload_bytes_out as f64,
            messages_in: c.messages_in as f64,
            messages_out: c.messages_out as f64,
            guard_drops: c.guard_drops as f64,
            srtt_ms: c.srtt_ms,
            rttvar_ms: c.rttvar_ms,
            rto_ms: c.rto_ms,
            rtt_min_ms: e.rtt_min,
            rtt_max_ms: e.rtt_max,
            in_segs: e.in_segs as f64,
            out_segs: e.out_segs as f64,
            in_push_segs: e.in_push_segs as f64,
            out_push_segs: e.out_push_segs as f64,
            retrans_segs: e.retrans_segs as f64,
            fast_retrans_segs: e.fast_retrans_segs as f64,
            lost_segs: e.lost_segs as f64,
            repeat_segs: e.repeat_segs as f64,
            acks_sent: e.acks_sent as f64,
            acks_received: e.acks_received as f64,
            window_probes_sent: e.window_probes_sent as f64,
            window_probes_received: e.window_probes_received as f64,
            unreliable_sent: c.unreliable.sent as f64,
            unreliable_received: c.unreliable.received as f64,
            unreliable_dropped: c.unreliable.dropped as f64,
        }))
    }

    /// Lets the process exit while this endpoint is open.
    #[napi]
    pub fn unref(&mut self, env: Env) -> Result<()> {
        if let Some(live) = &self.live {
            if let Ok(mut guard) = live.notify.lock() {
                if let Some(tsfn) = guard.as_mut() {
                    keep_alive(tsfn, &env, false).map_err(errors::napi)?;
                }
            }
        }
        Ok(())
    }

    /// Keeps the process alive while this endpoint is open (the default).
    #[napi(js_name = "ref")]
    pub fn refer(&mut self, env: Env) -> Result<()> {
        if let Some(live) = &self.live {
            if let Ok(mut guard) = live.notify.lock() {
                if let Some(tsfn) = guard.as_mut() {
                    keep_alive(tsfn, &env, true).map_err(errors::napi)?;
                }
            }
        }
        Ok(())
    }

    /// Ends every connection with `shutdown`, stops and joins the I/O thread and log thread,
    /// and frees the runtime: socket, waker, log ring. The final records stay available to
    /// `takeRecords()` and `takeEvents()`. Idempotent.
    #[napi]
    pub fn close(&mut self, env: Env) -> Result<()> {
        let Some(mut live) = self.live.take() else {
            return Ok(());
        };
        // Before the shutdown: libuv must let go of the socket first.
        #[cfg(unix)]
        if let Some(watcher) = live.watcher.take() {
            watcher.close();
        }
        live.runtime.shutdown();
        self.leftover.stats = live.runtime.stats().ok().map(|s| stats_values(&s));
        // Appended: records a previous `takeRecords()` did not take are never dropped.
        self.leftover.records.extend(live.runtime.take_records());
        self.leftover.events.extend(live.runtime.take_events());
        for slot in [&live.notify, &live.notify_events] {
            if let Ok(mut guard) = slot.lock() {
                guard.take();
            }
        }
        let removed = live.exit_hook.take().map(|hook| hook.remove(&env));
        // The last reference, unless the hook could not be removed: the runtime is dropped
        // here, closing its descriptors and freeing its buffers.
        drop(live);
        removed.transpose().map(|_| ()).map_err(errors::napi)
    }

    /// Whether `close()` has run.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.live.is_none()
    }
}
