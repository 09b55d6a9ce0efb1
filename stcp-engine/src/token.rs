//! Typed `user_data` tokens: which operation kind a completion belongs to, and which slab slot
//! (with its generation) it was issued for.
//!
//! Layout of the 64-bit `user_data`: bits 56..64 = [`Op`] (never 0, so `user_data == 0` is never a
//! valid token), bits 32..56 = generation (24 bits), bits 0..32 = slot index.

/// The kind of io_uring operation a token was issued for. One variant per operation kind.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Multishot accept on a listener (slot = listener index).
    Accept = 1,
    /// Connect of a client socket.
    Connect = 2,
    /// (Multishot) receive into the provided buffer ring.
    Recv = 3,
    /// Send or gathering sendmsg (copying).
    Send = 4,
    /// Cancellation request (its own completion; the cancelled op completes separately).
    Cancel = 5,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Accept,
            2 => Op::Connect,
            3 => Op::Recv,
            4 => Op::Send,
            5 => Op::Cancel,
            _ => return None,
        })
    }
}

/// Generations wrap at 24 bits.
pub const GEN_MASK: u32 = (1 << 24) - 1;

/// A decoded `user_data`: operation kind, slab slot index, and the slot's generation when the
/// operation was issued (so a completion for a slot that has since been reused is recognisable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    /// Operation kind.
    pub op: Op,
    /// Slab index of the connection (or listener) the operation belongs to.
    pub slot: u32,
    /// Generation of that slot (24 bits; higher bits are dropped).
    pub gen: u32,
}

impl Token {
    /// A token for `op` on `slot` at generation `gen` (masked to 24 bits).
    pub const fn new(op: Op, slot: u32, gen: u32) -> Token {
        Token {
            op,
            slot,
            gen: gen & GEN_MASK,
        }
    }

    /// The `user_data` value to put in an SQE.
    pub const fn to_user_data(self) -> u64 {
        ((self.op as u64) << 56) | (((self.gen & GEN_MASK) as u64) << 32) | self.slot as u64
    }

    /// Decodes a CQE's `user_data`; `None` when it was not produced by [`Token::to_user_data`].
    pub fn from_user_data(user_data: u64) -> Option<Token> {
        let op = Op::from_u8((user_data >> 56) as u8)?;
        Some(Token {
            op,
            slot: user_data as u32,
            gen: ((user_data >> 32) as u32) & GEN_MASK,
        })
    }
}

/// Next generation after `gen`, wrapping within 24 bits.
pub const fn next_gen(gen: u32) -> u32 {
    (gen.wrapping_add(1)) & GEN_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_op_and_extreme_fields() {
        let ops = [Op::Accept, Op::Connect, Op::Recv, Op::Send, Op::Cancel];
        for op in ops {
            for (slot, gen) in [(0, 0), (u32::MAX, GEN_MASK), (12345, 77)] {
                let t = Token::new(op, slot, gen);
                let ud = t.to_user_data();
                assert_ne!(ud, 0);
                assert_eq!(Token::from_user_data(ud), Some(t));
            }
        }
    }

    #[test]
    fn rejects_foreign_user_data_and_masks_generation() {
        assert_eq!(Token::from_user_data(0), None);
        assert_eq!(Token::from_user_data(0xff << 56), None);
        assert_eq!(Token::new(Op::Recv, 1, GEN_MASK + 3).gen, 2);
        assert_eq!(next_gen(GEN_MASK), 0);
    }
}
