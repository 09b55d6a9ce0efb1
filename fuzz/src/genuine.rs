//! A genuine start for a stream target, chosen by the input: the fixture
//! peer's handshake frame and records that peer really seals. With it the
//! fuzzer puts its bytes after a valid session prefix without having to keep
//! hundreds of authenticated bytes intact (one changed bit anywhere in a
//! recorded session ends it at that record).
//!
//! Layout: `[plan]`, then one byte per frame giving its payload length
//! (`input::frame_len`: up to 239 bytes, or a length at a 16 KiB record
//! boundary, so a frame may be several records: `Begin`, `Continue`s,
//! `End`). Plan 0: no genuine prefix, the stream is all fuzzer bytes.
//! Otherwise bits 0-2 are the number of frames (0-7), bit 3 adds the
//! authenticated close after them, and bit 5 leaves the last frame open
//! when it has several records: its final record (and the close) are held
//! back, so the fuzzer's bytes
//! follow a genuine `Begin` (and `Continue`s) and meet the rules for the
//! inside of a frame, which are checked before any decryption. Stream
//! targets that start with a handshake put the genuine handshake frame
//! first.

use crate::input::{frame_len, pattern, Reader};
use stcp_proto::{Connection, Event, MAX_RECORD_PAYLOAD, RECORD_OVERHEAD};

/// Plan bit: a close after the frames.
pub const CLOSE: u8 = 8;
/// Plan bit set by [`Plan::encode`] so that an empty plan is not plan 0.
pub const ENABLED: u8 = 16;
/// Plan bit: the last frame's final record and the close are held back
/// (when that frame has several records; there is no close either way).
pub const OPEN: u8 = 32;

/// The genuine records a stream starts with.
#[derive(Debug, Default)]
pub struct Plan {
    /// Whether there is a genuine prefix at all.
    pub enabled: bool,
    lens: Vec<usize>,
    close: bool,
    open: bool,
}

impl Plan {
    /// Reads a plan.
    pub fn read(input: &mut Reader<'_>) -> Self {
        let plan = input.u8();
        Plan {
            enabled: plan != 0,
            lens: (0..plan & 7).map(|_| frame_len(input.u8())).collect(),
            close: plan & CLOSE != 0,
            open: plan & OPEN != 0,
        }
    }

    /// Encodes a plan of frames of `input::frame_len(code)` bytes for each
    /// of `lens`, with the bits of `flags` ([`CLOSE`], [`OPEN`]) (for seed
    /// corpora).
    pub fn encode(lens: &[u8], flags: u8) -> Vec<u8> {
        assert!(lens.len() <= 7, "at most 7 frames");
        let plan = lens.len() as u8 | flags | ENABLED;
        [&[plan][..], lens].concat()
    }

    /// The longest frame the plan sends (0 without frames), the open one
    /// included.
    pub fn longest_frame(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    /// Has `sender`, an established connection, seal the plan's frames.
    /// Returns their records' bytes and the events a receiver must report
    /// for them.
    pub fn seal(&self, sender: &mut Connection) -> (Vec<u8>, Vec<Event>) {
        let mut events = Vec::new();
        for (k, &len) in self.lens.iter().enumerate() {
            let payload = pattern(len, k * 59, 3);
            sender.send_frame(&payload).expect("the genuine peer sends");
            events.push(Event::Frame(payload));
        }
        if self.close && !self.open {
            sender.close().expect("the genuine peer closes");
            events.push(Event::Closed);
        }
        let mut bytes = sender.poll_transmit().to_vec();
        sender.advance_transmit(bytes.len());
        if let (true, Some(Event::Frame(last))) = (self.open, events.last()) {
            // The final record of the last frame (an `End`) is at the end:
            // what is left of that frame is still open. A one-record frame
            // is sent whole: holding it back would leave no frame open, only
            // a record the sender (standing for the genuine peer from here
            // on) has sealed and the receiver will never see.
            if last.len() > MAX_RECORD_PAYLOAD {
                let final_payload = match last.len() % MAX_RECORD_PAYLOAD {
                    0 => MAX_RECORD_PAYLOAD,
                    n => n,
                };
                bytes.truncate(bytes.len() - RECORD_OVERHEAD - final_payload);
                events.pop();
            }
        }
        (bytes, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, Setup};
    use crate::input::{BOUNDARY_CODE, RECORD};

    #[test]
    fn a_plan_reads_back_and_its_records_open_as_planned() {
        // 4 bytes, empty, 200 bytes, 16 KiB + 1 (Begin + End), 2 x 16 KiB (Begin + End).
        let codes = [4, 0, 200, BOUNDARY_CODE + 2, BOUNDARY_CODE + 4];
        let encoded = [Plan::encode(&codes, CLOSE), vec![9, 9]].concat();
        let mut input = Reader::new(&encoded);
        let plan = Plan::read(&mut input);
        assert!(plan.enabled);
        assert_eq!(input.rest(), &[9, 9]);

        let (mut client, mut server) = Setup::from_flags(0).established_pair();
        let (bytes, events) = plan.seal(&mut client);
        assert_eq!(events.len(), 6);
        assert!(matches!(&events[3], Event::Frame(p) if p.len() == RECORD + 1));
        assert_eq!(events[5], Event::Closed);
        // A multi-record frame: a Begin record (type 2) after the three small ones.
        let begin_at = [4, 0, 200].iter().map(|n| n + 20).sum::<usize>();
        assert_eq!(bytes[begin_at] >> 4, 2);
        server.handle_input(fixture::start(), &bytes).unwrap();
        let received: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
        assert_eq!(received, events);
    }

    #[test]
    fn an_open_plan_holds_the_last_frame_s_final_record_back() {
        // 5 bytes, then 2 x 16 KiB + 1: Begin and Continue sent, End held back.
        let plan = Plan::read(&mut Reader::new(&Plan::encode(
            &[5, BOUNDARY_CODE + 5],
            OPEN | CLOSE,
        )));
        let (mut client, mut server) = Setup::from_flags(0).established_pair();
        let (bytes, events) = plan.seal(&mut client);
        assert_eq!(events.len(), 1);
        assert_eq!(bytes.len(), 25 + (8 + RECORD + 16) + (4 + RECORD + 16));
        server.handle_input(fixture::start(), &bytes).unwrap();
        let received: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
        assert_eq!(received, events);
        // Inside the frame now: a Data record is refused before its tag is looked at.
        let data = [0, 0, 0, 17, b'x']
            .iter()
            .chain(&[0; 16])
            .copied()
            .collect::<Vec<u8>>();
        assert_eq!(
            server.handle_input(fixture::start(), &data),
            Err(stcp_proto::Error::MissingFinal)
        );
    }

    #[test]
    fn plan_zero_is_no_prefix() {
        let plan = Plan::read(&mut Reader::new(&[0, 5]));
        assert!(!plan.enabled);
        let (mut client, _server) = Setup::from_flags(0).established_pair();
        assert_eq!(plan.seal(&mut client), (Vec::new(), Vec::new()));
    }
}
