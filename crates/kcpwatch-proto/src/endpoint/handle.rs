//! Connection handles: a slot index and a generation in one u32, so a handle fits the binding
//! boundary and a stale one is recognised after its slot is reused.

/// Slot indices use the low 20 bits of a handle, generations the high 12, so a handle fits a
/// u32 on the binding boundary and a stale handle is recognised after its slot is reused.
pub(super) const INDEX_BITS: u32 = 20;

pub(super) const MAX_SLOTS: usize = 1 << INDEX_BITS;

pub(super) const GENERATION_MASK: u32 = (1 << (32 - INDEX_BITS)) - 1;

/// Identifies one connection of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionHandle(u32);

impl ConnectionHandle {
    pub(super) fn new(index: u32, generation: u32) -> Self {
        Self(((generation & GENERATION_MASK) << INDEX_BITS) | index)
    }

    pub(super) fn index(self) -> u32 {
        self.0 & ((1 << INDEX_BITS) - 1)
    }

    pub(super) fn generation(self) -> u32 {
        self.0 >> INDEX_BITS
    }

    /// The handle as a number for the binding boundary.
    pub fn to_bits(self) -> u32 {
        self.0
    }

    /// A handle from [`ConnectionHandle::to_bits`].
    pub fn from_bits(bits: u32) -> Self {
        Self(bits)
    }
}
