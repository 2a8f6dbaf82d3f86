//! The engine's error codes, read from the mapping itself: every error of the `kcp` crate is
//! built here and given to [`EngineError::from_kcp`], so the schema's `engine_error_code` and
//! TypeScript's `EngineErrorCode` list exactly the codes a `kcp:error` record can carry.

use kcpwatch_proto::session::EngineError;

/// The code of a caught engine panic, which no `kcp::Error` maps to.
pub const ENGINE_PANIC: &str = EngineError::PANIC_CODE;

/// One value of every `kcp::Error` variant. The `match` has no catch-all, so a variant the
/// engine gains is a compile error here until it is listed.
fn every_kcp_error() -> Vec<kcp::Error> {
    let all = vec![
        kcp::Error::ConvInconsistent(1, 2),
        kcp::Error::InvalidMtu(0),
        kcp::Error::InvalidSegmentSize(0),
        kcp::Error::InvalidSegmentDataSize(0, 0),
        kcp::Error::IoError(std::io::Error::other("output")),
        kcp::Error::NeedUpdate,
        kcp::Error::RecvQueueEmpty,
        kcp::Error::ExpectingFragment,
        kcp::Error::UnsupportedCmd(0),
        kcp::Error::UserBufTooBig,
        kcp::Error::UserBufTooSmall,
    ];
    for error in &all {
        match error {
            kcp::Error::ConvInconsistent(..)
            | kcp::Error::InvalidMtu(..)
            | kcp::Error::InvalidSegmentSize(..)
            | kcp::Error::InvalidSegmentDataSize(..)
            | kcp::Error::IoError(..)
            | kcp::Error::NeedUpdate
            | kcp::Error::RecvQueueEmpty
            | kcp::Error::ExpectingFragment
            | kcp::Error::UnsupportedCmd(..)
            | kcp::Error::UserBufTooBig
            | kcp::Error::UserBufTooSmall => {}
        }
    }
    all
}

/// Every `KCP_*` code [`EngineError::from_kcp`] produces, in the engine's declaration order,
/// each once.
pub fn codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Vec::new();
    for error in every_kcp_error() {
        let code = EngineError::from_kcp(&error).code;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// The codes of a `library` error: the engine's and a caught panic.
pub fn library_codes() -> Vec<&'static str> {
    let mut codes = codes();
    codes.push(ENGINE_PANIC);
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_named_once() {
        let codes = codes();
        assert_eq!(codes.len(), 10, "{codes:?}");
        assert!(codes.iter().all(|c| c.starts_with("KCP_")));
        assert!(!codes.contains(&ENGINE_PANIC));
    }
}
