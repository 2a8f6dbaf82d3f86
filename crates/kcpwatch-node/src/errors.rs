//! Runtime errors cross into JavaScript as `Error`s whose message starts with the stable code
//! in brackets; `src/errors.ts` turns them into the `KCP_ERR_*` classes.

use kcpwatch::RuntimeError;

pub(crate) fn to_js(error: RuntimeError) -> napi::Error {
    let errno = match &error {
        RuntimeError::Bind { source, .. } => source
            .raw_os_error()
            .map(|code| format!(" (os error {code})"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    napi::Error::from_reason(format!("[{}] {}{}", error.code(), error, errno))
}

pub(crate) fn invalid(message: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(format!("[KCP_ERR_INVALID_OPTION] {message}"))
}
