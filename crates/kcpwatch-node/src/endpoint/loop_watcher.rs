//! The event loop's watcher on the endpoint's socket: while the I/O thread sleeps it hands
//! reception to the event loop, and the kernel then wakes the JavaScript thread directly
//! (`kcpwatch` crate, `io_thread::reception`).
//!
//! A libuv poll handle on Node's own loop, through the libuv symbols Node exports to addons
//! (Unix; elsewhere the I/O thread keeps reception). It watches a duplicate of the socket's
//! descriptor: if the I/O thread ended unexpectedly and closed the socket, the number libuv
//! watches must not be reused by another file while the handle is open. libuv stops watching
//! synchronously in `uv_close`, so `close()` closes the duplicate and frees the runtime at
//! once; only the handle's memory waits for libuv's close callback. At the environment's
//! teardown an asynchronous cleanup hook closes the handle and holds the teardown until that
//! callback: a worker's loop refuses to close with a handle open.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;

use kcpwatch::LoopReception;
use kcpwatch::Runtime;
use napi::{sys, Env};

/// libuv's `uv_handle_type` value for a poll handle (`UV_POLL`), checked against libuv's own
/// name for it before use.
const UV_POLL: c_int = 8;
/// libuv's `UV_READABLE` event bit.
const UV_READABLE: c_int = 1;

type UvPollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type UvCloseCb = unsafe extern "C" fn(handle: *mut c_void);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_handle_type_name(kind: c_int) -> *const c_char;
    fn uv_poll_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: UvPollCb) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: UvCloseCb);
    fn uv_unref(handle: *mut c_void);
    fn uv_handle_set_data(handle: *mut c_void, data: *mut c_void);
    fn uv_handle_get_data(handle: *const c_void) -> *mut c_void;
}

/// One endpoint's watcher; shared (on the JavaScript thread only) by the endpoint, the libuv
/// handle and the cleanup hook.
pub(super) struct LoopWatcher {
    /// Until the handle is closed: `close()` frees the runtime at once, as without a watcher.
    runtime: RefCell<Option<Arc<Runtime>>>,
    /// The libuv handle's memory (`uv_handle_size(UV_POLL)` bytes, 8-aligned).
    handle: *mut c_void,
    /// The descriptor the handle watches, closed with the handle (libuv stops watching it
    /// when the handle closes, before its close callback).
    fd: Cell<Option<OwnedFd>>,
    watching: Cell<bool>,
    closing: Cell<bool>,
    /// The teardown hook, until libuv let go of the handle.
    hook: Cell<sys::napi_async_cleanup_hook_handle>,
    /// JavaScript's records callback, called straight from the watcher after a receive turn
    /// (the I/O thread's path goes through a threadsafe function, a wake-up of this thread):
    /// the env it belongs to, a reference to it and the async context it runs in. Released
    /// when the handle closes.
    env: sys::napi_env,
    records: Cell<sys::napi_ref>,
    context: Cell<sys::napi_async_context>,
    /// The records callback runs now (see `close`).
    calling: Cell<bool>,
}

/// What the endpoint holds.
pub(super) struct Watcher(Rc<LoopWatcher>);

impl Watcher {
    /// Creates the watcher (not yet watching) and lets the runtime hand reception to it.
    /// `None` where libuv is not the one this code was written for, or it refuses: the I/O
    /// thread then keeps reception, as without a watcher.
    pub(super) fn start(
        env: &Env,
        runtime: &Arc<Runtime>,
        on_records: sys::napi_value,
    ) -> Option<Self> {
        // SAFETY: libuv's own lookups, with no side effects.
        let (size, name) = unsafe { (uv_handle_size(UV_POLL), uv_handle_type_name(UV_POLL)) };
        // SAFETY: libuv returns a static NUL-terminated name, or null for an unknown type.
        if name.is_null() || unsafe { CStr::from_ptr(name) }.to_bytes() != b"poll" || size == 0 {
            return None;
        }
        let event_loop = env.get_uv_event_loop().ok()?;
        let (records, context) = records_callback(env.raw(), on_records)?;
        // SAFETY: the runtime's socket is open (it is not shut down before the endpoint
        // exists); the duplicate is ours to own and close.
        let fd = unsafe { dup(runtime.socket_fd()) }?;
        let handle =
            Box::into_raw(vec![0u64; size.div_ceil(8)].into_boxed_slice()).cast::<c_void>();
        // SAFETY: `handle` is zeroed memory of the size libuv asked for, on the loop's thread.
        if unsafe { uv_poll_init(event_loop, handle, fd.as_raw_fd()) } != 0 {
            // SAFETY: never initialised, so libuv does not know it; the callback's reference
            // and context are ours, on their env's thread.
            unsafe {
                free_handle(handle, size);
                release_callback(env.raw(), records, context);
            }
            return None;
        }
        let watcher = Rc::new(LoopWatcher {
            runtime: RefCell::new(Some(runtime.clone())),
            handle,
            fd: Cell::new(Some(fd)),
            watching: Cell::new(false),
            closing: Cell::new(false),
            hook: Cell::new(ptr::null_mut()),
            env: env.raw(),
            records: Cell::new(records),
            context: Cell::new(context),
            calling: Cell::new(false),
        });
        // SAFETY: an initialised handle on the loop's thread. Its data is one reference,
        // released by `on_closed`; unreferenced, it does not keep the loop alive (the records'
        // notification decides that, with `ref()`/`unref()`).
        unsafe {
            uv_handle_set_data(handle, Rc::into_raw(watcher.clone()).cast_mut().cast());
            uv_unref(handle);
        }
        let hook_arg = Rc::into_raw(watcher.clone()).cast_mut().cast::<c_void>();
        let mut hook = ptr::null_mut();
        // SAFETY: a live env on its thread; `hook_arg` is one reference, released by
        // `on_closed` once the hook is removed.
        let status = unsafe {
            sys::napi_add_async_cleanup_hook(env.raw(), Some(at_teardown), hook_arg, &mut hook)
        };
        if status == sys::Status::napi_ok {
            watcher.hook.set(hook);
        } else {
            // SAFETY: not registered, so the reference is still ours.
            drop(unsafe { Rc::from_raw(hook_arg.cast::<LoopWatcher>()) });
            watcher.close();
            return None;
        }
        runtime.enable_loop_reception();
        Some(Self(watcher))
    }

    /// JavaScript took its records: starts watching if the I/O thread handed reception over.
    pub(super) fn records_taken(&self) {
        let wanted = self.0.with_runtime(|runtime| runtime.loop_watch_wanted());
        if wanted == Some(true) {
            self.0.watch();
        }
    }

    /// Stops watching and lets libuv go of the handle; reception stays with the I/O thread.
    pub(super) fn close(&self) {
        self.0.close();
    }
}

impl Drop for Watcher {
    /// An endpoint collected without `close()`: reception goes back to the I/O thread, which
    /// lives on until the environment's teardown, as it did before.
    fn drop(&mut self) {
        self.0.close();
    }
}

impl LoopWatcher {
    /// Runs `f` with the runtime, unless the handle is closed.
    fn with_runtime<T>(&self, f: impl FnOnce(&Runtime) -> T) -> Option<T> {
        self.runtime.borrow().as_deref().map(f)
    }

    fn watch(&self) {
        if self.watching.get() || self.closing.get() {
            return;
        }
        // SAFETY: an initialised, open handle on the loop's thread.
        if unsafe { uv_poll_start(self.handle, UV_READABLE, on_readable) } == 0 {
            self.watching.set(true);
        } else {
            self.with_runtime(Runtime::stop_loop_reception);
        }
    }

    fn unwatch(&self) {
        if self.watching.replace(false) {
            // SAFETY: an initialised, open handle on the loop's thread.
            unsafe { uv_poll_stop(self.handle) };
        }
    }

    fn close(&self) {
        if self.closing.replace(true) {
            return;
        }
        self.with_runtime(Runtime::stop_loop_reception);
        self.watching.set(false);
        // SAFETY: an initialised handle, closed once, on the loop's thread; libuv stops
        // watching its descriptor at once and calls `on_closed` on a later turn.
        unsafe { uv_close(self.handle, on_closed) };
        self.fd.take();
        self.runtime.borrow_mut().take();
        // Closed from inside the records callback (a handler closing the endpoint): the call
        // still runs in that context, so `hand_over_records` releases it once the call returns.
        if !self.calling.get() {
            self.release_callback();
        }
    }

    fn release_callback(&self) {
        let records = self.records.replace(ptr::null_mut());
        let context = self.context.replace(ptr::null_mut());
        // SAFETY: created in `start` on this env's thread, released once (the cells are
        // emptied); the env is live: this runs from `close()`, a finalizer, the teardown hook
        // or right after a callback, all before the env is gone.
        unsafe { release_callback(self.env, records, context) };
    }

    /// Calls JavaScript's records callback now, on this thread, as the threadsafe function
    /// would on a later turn. If it cannot, the runtime sends the usual notification instead,
    /// so the records are never left without one.
    fn hand_over_records(&self) {
        let records = self.records.get();
        let context = self.context.get();
        // SAFETY: a live env on its thread, called from a libuv callback (no JavaScript on the
        // stack), with the reference and context `start` created and `close` has not released.
        self.calling.set(true);
        let called = !records.is_null() && unsafe { call(self.env, records, context) };
        self.calling.set(false);
        if self.closing.get() {
            self.release_callback();
        } else if !called {
            self.with_runtime(Runtime::announce_records);
        }
    }
}

/// The socket is readable (or libuv reports an error, which stops the handle).
unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    // SAFETY: the handle's data is a reference to its watcher until `on_closed`, and libuv
    // calls back only on the loop's thread and never after `uv_close`.
    let watcher = unsafe { &*uv_handle_get_data(handle).cast::<LoopWatcher>() };
    if status < 0 {
        // libuv stopped the handle itself (an error report on the socket, which is the I/O
        // thread's to read).
        watcher.watching.set(false);
        watcher.with_runtime(Runtime::give_reception_back);
        return;
    }
    let reception = watcher.with_runtime(Runtime::receive_on_loop);
    // Before JavaScript runs: if the I/O thread hands reception over again meanwhile, taking
    // the records starts this handle again, which must not be stopped after that.
    if reception != Some(LoopReception::Watch) {
        watcher.unwatch();
    }
    if watcher.with_runtime(Runtime::records_waiting) == Some(true) {
        // JavaScript may close the endpoint here, which closes this handle.
        watcher.hand_over_records();
    }
}

/// libuv let go of the handle: frees it and lets the teardown go on.
unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: the reference `Watcher::start` gave the handle, released here, once.
    let watcher = unsafe { Rc::from_raw(uv_handle_get_data(handle).cast::<LoopWatcher>()) };
    let hook = watcher.hook.replace(ptr::null_mut());
    if !hook.is_null() {
        // SAFETY: the handle `napi_add_async_cleanup_hook` gave; removing it before the hook
        // ran unregisters it, after it ran it tells Node the teardown may go on.
        unsafe { sys::napi_remove_async_cleanup_hook(hook) };
        // SAFETY: the reference the hook held; it is never called after removal.
        drop(unsafe { Rc::from_raw(Rc::as_ptr(&watcher)) });
    }
    // SAFETY: libuv no longer uses the memory.
    unsafe { free_handle(handle, uv_handle_size(UV_POLL)) };
}

/// The environment is being torn down with the endpoint open.
unsafe extern "C" fn at_teardown(_hook: sys::napi_async_cleanup_hook_handle, arg: *mut c_void) {
    // SAFETY: the hook's reference, valid until `on_closed` removes the hook.
    let watcher = unsafe { &*arg.cast::<LoopWatcher>() };
    watcher.close();
}

/// Frees a handle's memory, allocated in `Watcher::start` for `size` bytes.
///
/// # Safety
/// `handle` must be that allocation, which libuv no longer uses.
unsafe fn free_handle(handle: *mut c_void, size: usize) {
    let words = size.div_ceil(8);
    // SAFETY: the boxed slice `Watcher::start` leaked, with the same length.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(handle.cast::<u64>(), words)) });
}

/// A duplicate of `fd` (close-on-exec), owned.
///
/// # Safety
/// `fd` must be open for the duration of the call.
unsafe fn dup(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: the caller keeps `fd` open for the call.
    unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .ok()
}

/// A reference to JavaScript's records callback and an async context to call it in.
fn records_callback(
    env: sys::napi_env,
    on_records: sys::napi_value,
) -> Option<(sys::napi_ref, sys::napi_async_context)> {
    let mut records = ptr::null_mut();
    let mut resource = ptr::null_mut();
    let mut name = ptr::null_mut();
    let mut context = ptr::null_mut();
    const NAME: &str = "kcpwatch:records";
    // SAFETY: a live env on its thread; every out-pointer is valid.
    unsafe {
        if sys::napi_create_reference(env, on_records, 1, &mut records) != sys::Status::napi_ok {
            return None;
        }
        let ok = sys::napi_create_object(env, &mut resource) == sys::Status::napi_ok
            && sys::napi_create_string_utf8(
                env,
                NAME.as_ptr().cast(),
                NAME.len() as isize,
                &mut name,
            ) == sys::Status::napi_ok
            && sys::napi_async_init(env, resource, name, &mut context) == sys::Status::napi_ok;
        if !ok {
            sys::napi_delete_reference(env, records);
            return None;
        }
    }
    Some((records, context))
}

/// Releases what [`records_callback`] made (null parts are skipped).
///
/// # Safety
/// On the env's thread, while it is live, each part released once.
unsafe fn release_callback(
    env: sys::napi_env,
    records: sys::napi_ref,
    context: sys::napi_async_context,
) {
    // SAFETY: as the caller promises.
    unsafe {
        if !records.is_null() {
            sys::napi_delete_reference(env, records);
        }
        if !context.is_null() {
            sys::napi_async_destroy(env, context);
        }
    }
}

/// Calls the records callback with `napi_make_callback`, which, like Node's own callbacks, runs
/// `process.nextTick` callbacks and promise reactions once it returns. A throw reaches
/// `uncaughtException`, as from the threadsafe function. Returns false if the call could not
/// be made.
///
/// # Safety
/// On the env's thread, from a libuv callback, with a live reference and context.
unsafe fn call(
    env: sys::napi_env,
    records: sys::napi_ref,
    context: sys::napi_async_context,
) -> bool {
    // SAFETY: as the caller promises; every out-pointer is valid and the scope is closed on
    // every path.
    unsafe {
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
            return false;
        }
        let mut function = ptr::null_mut();
        let mut global = ptr::null_mut();
        let mut result = ptr::null_mut();
        let mut called = false;
        if sys::napi_get_reference_value(env, records, &mut function) == sys::Status::napi_ok
            && !function.is_null()
            && sys::napi_get_global(env, &mut global) == sys::Status::napi_ok
        {
            let status = sys::napi_make_callback(
                env,
                context,
                global,
                function,
                0,
                ptr::null(),
                &mut result,
            );
            called = true;
            if status == sys::Status::napi_pending_exception {
                let mut error = ptr::null_mut();
                if sys::napi_get_and_clear_last_exception(env, &mut error) == sys::Status::napi_ok {
                    sys::napi_fatal_exception(env, error);
                }
            } else if status != sys::Status::napi_ok {
                called = false;
            }
        }
        sys::napi_close_handle_scope(env, scope);
        called
    }
}
