//! Why a session refused a message, and the engine's errors by stable code.

use crate::events::CappedText;

/// Why `send` refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionSendError {
    /// The message is larger than `max_message_size`.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Message size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Accepting the message would exceed `max_send_queue_bytes`.
    #[error("send queue full: {queued} bytes queued, limit {limit}")]
    QueueFull {
        /// Bytes already queued.
        queued: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection is closing or closed.
    #[error("connection is not open")]
    NotOpen,
    /// Not produced: an empty message is sent as a PUSH of length 0, as ikcp does. Kept for
    /// the `empty_message` violation code older bindings may still report.
    #[error("empty message")]
    Empty,
    /// The engine refused a message the session had validated (a defect, reported as a
    /// library error); the `KCP_*` code.
    #[error("engine refused the message: {0}")]
    Engine(&'static str),
}

/// A KCP engine call failed even though the guard had accepted its input (a defect of the
/// guard or the engine): the stable code and the engine's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineError {
    /// `KCP_*` code.
    pub code: &'static str,
    /// The engine's message.
    pub message: CappedText,
}

impl EngineError {
    /// The code of a caught engine panic (the session is discarded), which no `kcp::Error`
    /// maps to.
    pub const PANIC_CODE: &'static str = "KCP_ENGINE_PANIC";

    /// Maps every error of the `kcp` crate to a stable code.
    pub fn from_kcp(error: &kcp::Error) -> Self {
        let code = match error {
            kcp::Error::ConvInconsistent(..) => "KCP_INPUT_BAD_CONV",
            kcp::Error::InvalidMtu(..) => "KCP_INVALID_MTU",
            kcp::Error::InvalidSegmentSize(..) => "KCP_INPUT_TOO_SHORT",
            kcp::Error::InvalidSegmentDataSize(..) => "KCP_INPUT_BAD_LENGTH",
            kcp::Error::IoError(..) => "KCP_OUTPUT_FAILED",
            kcp::Error::NeedUpdate => "KCP_NEED_UPDATE",
            kcp::Error::RecvQueueEmpty | kcp::Error::ExpectingFragment => "KCP_RECV_EMPTY",
            kcp::Error::UnsupportedCmd(..) => "KCP_INPUT_BAD_CMD",
            kcp::Error::UserBufTooBig => "KCP_SEND_TOO_BIG",
            kcp::Error::UserBufTooSmall => "KCP_RECV_BUFFER_TOO_SMALL",
        };
        Self {
            code,
            message: CappedText::format(error),
        }
    }
}
