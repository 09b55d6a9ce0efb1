//! A genuine start for a stream target, chosen by the input: the fixture
//! peer's handshake frame and records that peer really seals. With it the
//! fuzzer puts its bytes after a valid session prefix without having to keep
//! hundreds of authenticated bytes intact (one changed bit anywhere in a
//! recorded session ends it at that record).
//!
//! Layout: `[plan]`, then one byte per data record giving its payload
//! length. Plan 0: no genuine prefix, the stream is all fuzzer bytes.
//! Otherwise bits 0-2 are the number of data records (0-7) and bit 3 adds
//! the authenticated close after them; stream targets that start with a
//! handshake put the genuine handshake frame first.

use crate::input::Reader;
use stcp_proto::{Connection, Event};

/// The genuine records a stream starts with.
#[derive(Debug, Default)]
pub struct Plan {
    /// Whether there is a genuine prefix at all.
    pub enabled: bool,
    lens: Vec<usize>,
    close: bool,
}

impl Plan {
    /// Reads a plan.
    pub fn read(input: &mut Reader<'_>) -> Self {
        let plan = input.u8();
        Plan {
            enabled: plan != 0,
            lens: (0..plan & 7).map(|_| input.u8() as usize).collect(),
            close: plan & 8 != 0,
        }
    }

    /// Encodes a plan of data records of `lens` bytes, then a close when
    /// `close` (for seed corpora).
    pub fn encode(lens: &[u8], close: bool) -> Vec<u8> {
        assert!(lens.len() <= 7, "at most 7 records");
        let plan = lens.len() as u8 | if close { 8 } else { 0 } | 16;
        [&[plan][..], lens].concat()
    }

    /// Has `sender`, an established connection, seal the plan's records.
    /// Returns their bytes and the events a receiver must report for them.
    pub fn seal(&self, sender: &mut Connection) -> (Vec<u8>, Vec<Event>) {
        let mut events = Vec::new();
        for (k, &len) in self.lens.iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|i| (k * 59 + i * 3) as u8).collect();
            sender.send_frame(&payload).expect("the genuine peer sends");
            events.push(Event::Frame(payload));
        }
        if self.close {
            sender.close().expect("the genuine peer closes");
            events.push(Event::Closed);
        }
        let bytes = sender.poll_transmit().to_vec();
        sender.advance_transmit(bytes.len());
        (bytes, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, Setup};

    #[test]
    fn a_plan_reads_back_and_its_records_open_as_planned() {
        let encoded = [Plan::encode(&[4, 0, 200], true), vec![9, 9]].concat();
        let mut input = Reader::new(&encoded);
        let plan = Plan::read(&mut input);
        assert!(plan.enabled);
        assert_eq!(input.rest(), &[9, 9]);

        let (mut client, mut server) = Setup::from_flags(0).established_pair();
        let (bytes, events) = plan.seal(&mut client);
        assert_eq!(events.len(), 4);
        assert_eq!(events[3], Event::Closed);
        server.handle_input(fixture::start(), &bytes).unwrap();
        let received: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
        assert_eq!(received, events);
    }

    #[test]
    fn plan_zero_is_no_prefix() {
        let plan = Plan::read(&mut Reader::new(&[0, 5]));
        assert!(!plan.enabled);
        let (mut client, _server) = Setup::from_flags(0).established_pair();
        assert_eq!(plan.seal(&mut client), (Vec::new(), Vec::new()));
    }
}
