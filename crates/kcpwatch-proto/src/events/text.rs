//! Inline, capped text that events carry without allocating.

use std::fmt;

/// Bytes kept of an error message; longer ones are cut at a character boundary.
pub const MESSAGE_CAPACITY: usize = 160;

/// The longest user id, in bytes of UTF-8.
pub const MAX_USER_ID_LEN: usize = 128;

/// The application's id of the user behind a connection (from its `authenticate` answer),
/// stored inline so that events never allocate. Every record of the connection carries it,
/// through the privacy mode (docs/privacy.md).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId {
    len: u8,
    bytes: [u8; MAX_USER_ID_LEN],
}

/// A user id that cannot be carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    /// Longer than [`MAX_USER_ID_LEN`] bytes of UTF-8.
    #[error("a user id is at most 128 bytes of UTF-8, got {0} bytes")]
    TooLong(usize),
}

impl UserId {
    /// No user id.
    pub const NONE: Self = Self {
        len: 0,
        bytes: [0; MAX_USER_ID_LEN],
    };

    /// The id `text`; an empty text is [`UserId::NONE`].
    pub fn new(text: &str) -> Result<Self, UserIdError> {
        let len = text.len();
        if len > MAX_USER_ID_LEN {
            return Err(UserIdError::TooLong(len));
        }
        let mut id = Self::NONE;
        id.bytes[..len].copy_from_slice(text.as_bytes());
        id.len = len as u8;
        Ok(id)
    }

    /// The id, if there is one.
    pub fn as_str(&self) -> Option<&str> {
        // Only a whole `&str` is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .ok()
            .filter(|s| !s.is_empty())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::NONE
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_str(), f)
    }
}

/// Text stored inline and capped at [`MESSAGE_CAPACITY`] bytes, so events never allocate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CappedText {
    len: u8,
    bytes: [u8; MESSAGE_CAPACITY],
}

impl CappedText {
    /// Empty text.
    pub const EMPTY: Self = Self {
        len: 0,
        bytes: [0; MESSAGE_CAPACITY],
    };

    /// Formats `value` into the buffer, cutting what does not fit.
    pub fn format(value: impl fmt::Display) -> Self {
        use fmt::Write;
        let mut text = Self::EMPTY;
        let _ = write!(text, "{value}");
        text
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever written.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for CappedText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let used = usize::from(self.len);
        let room = MESSAGE_CAPACITY - used;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[used..used + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take as u8;
        Ok(())
    }
}

impl Default for CappedText {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl fmt::Debug for CappedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A Zeek-style history: one letter per kind of activity, in the order each kind first
/// happened. Upper case is the originator, lower case the responder (see `docs/events.md`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    len: u8,
    letters: [u8; 16],
}

impl History {
    /// Records `letter` for the originator (`originator == true`) or the responder, once.
    pub fn note(&mut self, letter: u8, originator: bool) {
        let letter = if originator {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        };
        let used = usize::from(self.len);
        if used < self.letters.len() && !self.letters[..used].contains(&letter) {
            self.letters[used] = letter;
            self.len += 1;
        }
    }

    /// The letters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.letters[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_text_cuts_at_a_character_boundary() {
        let long = "é".repeat(200);
        let text = CappedText::format(&long);
        assert!(text.as_str().len() <= MESSAGE_CAPACITY);
        assert_eq!(text.as_str().len() % 2, 0);
        assert_eq!(CappedText::format("bind failed").as_str(), "bind failed");
    }

    #[test]
    fn history_keeps_first_occurrences_in_order() {
        let mut h = History::default();
        h.note(b'd', true);
        h.note(b'a', false);
        h.note(b'd', true);
        h.note(b'd', false);
        assert_eq!(h.as_str(), "Dad");
    }
}
