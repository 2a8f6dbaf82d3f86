//! The stable `KCP_ERR_*` codes: the one list of every failure an application can be told
//! about, whichever side raises it. Rust failures carry an [`ErrorCode`] across the binding
//! (it becomes the thrown error's `code` property); `npm run codegen` writes the list, with
//! each variant's doc line, to `src/generated/error-codes.ts`, from which `src/errors.ts`
//! registers one class per code (a code without its class does not compile).
//!
//! A code is public API: it is never renamed or reworded, only added.

/// Declares [`ErrorCode`] from one list of `doc, Variant = "KCP_ERR_*"`, so the doc line the
/// TypeScript side shows is the variant's own doc comment, not a copy of it.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal,)+) => {
        /// One stable failure code (`KCP_ERR_*`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant,)+];

            /// The stable string (`KCP_ERR_*`): the JavaScript error's `code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            /// What the code means: its doc comment, lines joined by spaces.
            pub fn doc(self) -> String {
                match self {
                    $(Self::$variant => {
                        let lines: &[&str] = &[$($doc),+];
                        lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
                    })+
                }
            }
        }
    };
}

error_codes! {
    /// A failure of no more specific class (the base `KcpError`).
    Generic = "KCP_ERR_GENERIC",
    /// An option has a wrong type or a value that cannot work.
    InvalidOption = "KCP_ERR_INVALID_OPTION",
    /// The address is already bound by another socket (EADDRINUSE).
    AddrInUse = "KCP_ERR_ADDR_IN_USE",
    /// The address does not belong to this host (EADDRNOTAVAIL).
    AddrNotAvailable = "KCP_ERR_ADDR_NOT_AVAILABLE",
    /// Binding was refused by the OS (EACCES, privileged port).
    PermissionDenied = "KCP_ERR_PERMISSION_DENIED",
    /// Any other bind failure.
    Bind = "KCP_ERR_BIND",
    /// A host name did not resolve.
    Resolve = "KCP_ERR_RESOLVE",
    /// The server, client or connection is closed.
    Closed = "KCP_ERR_CLOSED",
    /// The message exceeds `maxMessageSize`.
    MessageTooLarge = "KCP_ERR_MESSAGE_TOO_LARGE",
    /// Queued bytes would exceed `maxSendQueueBytes`; wait for `drain`.
    QueueFull = "KCP_ERR_QUEUE_FULL",
    /// No longer thrown: an empty message is sent as a 0-byte message. Kept so code that
    /// names it still compiles.
    EmptyMessage = "KCP_ERR_EMPTY_MESSAGE",
    /// Opening a connection failed (duplicate conv, capacity).
    Connect = "KCP_ERR_CONNECT",
    /// A client is at its `maxConnections`: close one of its connections first.
    ConnectionLimit = "KCP_ERR_CONNECTION_LIMIT",
    /// The feature is not available in this version.
    NotSupported = "KCP_ERR_NOT_SUPPORTED",
    /// Secure mode: the server did not answer the handshake in time.
    HandshakeTimeout = "KCP_ERR_HANDSHAKE_TIMEOUT",
    /// Secure mode: ICMP reported the server's address unreachable during the handshake.
    Unreachable = "KCP_ERR_UNREACHABLE",
    /// Secure mode: the server's `authenticate` refused our token.
    AuthRejected = "KCP_ERR_AUTH_REJECTED",
    /// Secure mode: the server shut down during our handshake, before it judged our token.
    ServerShutdown = "KCP_ERR_SERVER_SHUTDOWN",
    /// Secure mode: the server refused us for a connection limit.
    ServerFull = "KCP_ERR_SERVER_FULL",
    /// Reserved: a REJECT for opening handshakes too fast, which no server sends.
    RateLimited = "KCP_ERR_RATE_LIMITED",
    /// Secure mode: the server speaks another protocol version.
    VersionMismatch = "KCP_ERR_VERSION_MISMATCH",
    /// Secure mode: the server could not prove it holds the key the client pinned.
    ServerAuth = "KCP_ERR_SERVER_AUTH",
    /// Secure mode: `stream: true` is set on one side only.
    StreamMismatch = "KCP_ERR_STREAM_MISMATCH",
    /// Secure mode: the handshake failed for another reason.
    Handshake = "KCP_ERR_HANDSHAKE",
    /// Server: the application's `authenticate` threw or rejected; the client was refused.
    Authenticate = "KCP_ERR_AUTHENTICATE",
    /// `listen()` was called on a server that is listening or binding already.
    AlreadyListening = "KCP_ERR_ALREADY_LISTENING",
    /// The native addon for this platform is not installed (or does not load here).
    NativeBinding = "KCP_ERR_NATIVE_BINDING",
    /// A failure inside the library itself.
    Internal = "KCP_ERR_INTERNAL",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_prefixed() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(code.as_str().starts_with("KCP_ERR_"), "{code}");
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(
                !code.doc().is_empty() && !code.doc().contains("  "),
                "{code:?}"
            );
        }
        assert_eq!(
            ErrorCode::EmptyMessage.doc(),
            "No longer thrown: an empty message is sent as a 0-byte message. Kept so code that names it still compiles."
        );
    }
}
