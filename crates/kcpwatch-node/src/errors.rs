//! Runtime errors cross into JavaScript as `Error`s whose message starts with the stable code
//! in brackets; `src/errors.ts` turns them into the `KCP_ERR_*` classes.

use kcpwatch::RuntimeError;

/// A security record that belongs to the error (a bind failure's `kcp:error`) follows the
/// message on its own line, for `src/errors.ts` to take off and hand to event listeners.
pub(crate) fn to_js(error: RuntimeError) -> napi::Error {
    let (errno, record) = match &error {
        RuntimeError::Bind { source, record, .. } => (
            source
                .raw_os_error()
                .map(|code| format!(" (os error {code})"))
                .unwrap_or_default(),
            record
                .as_deref()
                .map(|r| format!("\n{}", r.trim_end()))
                .unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let text = error.to_string();
    // `io::Error`'s Display already ends with "(os error N)" for OS errors: say it once.
    let errno = if text.contains(errno.trim_start()) {
        String::new()
    } else {
        errno
    };
    napi::Error::from_reason(format!("[{}] {}{}{}", error.code(), text, errno, record))
}

pub(crate) fn invalid(message: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(format!("[KCP_ERR_INVALID_OPTION] {message}"))
}
