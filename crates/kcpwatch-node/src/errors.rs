//! Failures cross into JavaScript as structured errors: the message is the failure's text, and
//! the stable code (`KCP_ERR_*`, [`ErrorCode`]) is the error's `code` property, which napi sets
//! from the error's status. `src/errors.ts` maps the code onto its class.
//!
//! A bind failure's `kcp:error` record rides on the error as its `securityRecord` property
//! (canonical JSON), for `src/errors.ts` to hand to event listeners: see [`throw_runtime`].

use kcpwatch::RuntimeError;
use kcpwatch_proto::ErrorCode;
use napi::bindgen_prelude::JsObjectValue;
use napi::{Env, Status};

/// What a thrown error's `code` property says: a kcpwatch failure's stable code, or napi's
/// own status for a failure of the binding layer itself (which `src/errors.ts` reports as
/// `KcpInternalError`).
#[derive(Debug, Clone, Copy)]
pub enum Code {
    /// A kcpwatch failure.
    Kcp(ErrorCode),
    /// napi-rs failed (a value that does not convert, a threadsafe function that cannot be made).
    Napi(Status),
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Self::Kcp(code) => code.as_str(),
            Self::Napi(status) => status.as_ref(),
        }
    }
}

/// What every function of the binding returns: its error's status becomes the JavaScript
/// error's `code`.
pub type Result<T> = napi::Result<T, Code>;

/// A failure of the binding layer (napi-rs's own), keeping its status as the code.
pub(crate) fn napi(error: napi::Error) -> napi::Error<Code> {
    napi::Error::new(Code::Napi(error.status), error.reason)
}

/// A runtime failure, with its stable code.
pub(crate) fn to_js(error: RuntimeError) -> napi::Error<Code> {
    let code = error.code();
    napi::Error::new(Code::Kcp(code), message(&error))
}

/// The message the application sees: the failure's text, with the OS error number once.
fn message(error: &RuntimeError) -> String {
    let text = error.to_string();
    let errno = match error {
        RuntimeError::Bind { source, .. } => source.raw_os_error(),
        _ => None,
    };
    match errno {
        // `io::Error`'s Display already ends with "(os error N)" for OS errors: say it once.
        Some(errno) if !text.contains(&format!("(os error {errno})")) => {
            format!("{text} (os error {errno})")
        }
        _ => text,
    }
}

/// Throws a runtime failure; one that carries a security record (a bind failure with logging
/// on) is built here so the record can be set on it as `securityRecord`, which napi's
/// status-and-reason errors cannot carry.
pub(crate) fn throw_runtime(env: &Env, error: RuntimeError) -> napi::Error<Code> {
    let Some(record) = error.security_record().map(str::to_owned) else {
        return to_js(error);
    };
    let code = error.code();
    let text = message(&error);
    let thrown = env
        .create_error(napi::Error::new(Status::GenericFailure, text.clone()))
        .and_then(|mut object| {
            object.set_named_property("code", code.as_str())?;
            object.set_named_property("securityRecord", record)?;
            env.throw(object)
        });
    match thrown {
        // The error is pending: napi throws nothing more for this status.
        Ok(()) => napi::Error::new(Code::Napi(Status::PendingException), text),
        // The record cannot be attached (the environment is going away): the error still
        // says what failed.
        Err(_) => napi::Error::new(Code::Kcp(code), text),
    }
}

/// An option the binding cannot use.
pub(crate) fn invalid(message: impl std::fmt::Display) -> napi::Error<Code> {
    napi::Error::new(Code::Kcp(ErrorCode::InvalidOption), message.to_string())
}
