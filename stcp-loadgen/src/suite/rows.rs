//! A suite row: one workload (payload size x connections), written `256x50`, `4kx20`, `64kx5` on
//! the command line for persistent connections, `256x16n1` for churn (each connection does one
//! request, closes and is replaced: `--requests-per-conn 1`). The default rows are the seed's
//! table, one row beyond it, and the handshake row.

use std::fmt;
use std::str::FromStr;

use stcp_server::units;

use crate::report::size_label;

/// The seed's four rows (../shared/seed/PERFORMANCE-seed.md, "Results Summary").
pub const SEED_ROWS: &str = "256x50,4kx20,16kx10,64kx5";
/// The default rows: the seed's four and a fifth beyond them, 1 MiB frames x 20 connections
/// (frames of 64 records each in STCP: the streamed, cut-through path).
pub const DEFAULT_ROWS: &str = "256x50,4kx20,16kx10,64kx5,1mx20,256x16n1";
/// The handshake row: connect, handshake, one 256 B echo, close, again, over 16 connections at a
/// time (issue 11's churn workload).
pub const HANDSHAKE_ROW: &str = "256x16n1";

/// One workload of a suite: every request `payload_bytes` long, `clients` connections, one request
/// in flight each (the seed's closed loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row {
    pub payload_bytes: u64,
    pub clients: u32,
    /// Churn: requests per connection (`--requests-per-conn`); None: persistent connections.
    pub requests_per_conn: Option<u64>,
}

impl fmt::Display for Row {
    /// `256x50`, `64kx5`, `256x16n1`: as typed on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", size_label(self.payload_bytes), self.clients)?;
        match self.requests_per_conn {
            Some(n) => write!(f, "n{n}"),
            None => Ok(()),
        }
    }
}

impl FromStr for Row {
    type Err = String;

    fn from_str(text: &str) -> Result<Row, String> {
        let text = text.trim();
        let (payload, clients) = text.rsplit_once(['x', 'X']).ok_or_else(|| {
            format!("row '{text}': write PAYLOADxCLIENTS, for example 256x50 or 64kx5")
        })?;
        let payload_bytes =
            units::parse_size(payload).map_err(|e| format!("row '{text}': payload: {e}"))? as u64;
        let (clients, requests_per_conn) = match clients.split_once(['n', 'N']) {
            Some((clients, n)) => (
                clients,
                Some(n.parse::<u64>().map_err(|_| {
                    format!("row '{text}': '{n}' is not a number of requests per connection")
                })?),
            ),
            None => (clients, None),
        };
        let clients: u32 = clients
            .parse()
            .map_err(|_| format!("row '{text}': '{clients}' is not a number of clients"))?;
        if clients == 0 {
            return Err(format!("row '{text}': at least one client"));
        }
        Ok(Row {
            payload_bytes,
            clients,
            requests_per_conn,
        })
    }
}

/// Refuses an empty list and a row given twice.
pub fn check_rows(rows: &[Row]) -> Result<(), String> {
    if rows.is_empty() {
        return Err("no row given: write for example --rows 256x50,64kx5".into());
    }
    for (i, row) in rows.iter().enumerate() {
        if rows[..i].contains(row) {
            return Err(format!("--rows: {row} is given twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
        let rows = text
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Row>, String>>()?;
        check_rows(&rows)?;
        Ok(rows)
    }

    #[test]
    fn the_seed_rows_parse_and_print_as_typed() {
        let rows = parse_rows(SEED_ROWS).unwrap();
        let shown: Vec<String> = rows.iter().map(Row::to_string).collect();
        assert_eq!(shown, ["256x50", "4kx20", "16kx10", "64kx5"]);
        assert_eq!(rows[3].payload_bytes, 65536);
        assert_eq!(rows[0].clients, 50);
    }

    #[test]
    fn bad_rows_are_refused_with_a_reason() {
        assert!(parse_rows("256").unwrap_err().contains("PAYLOADxCLIENTS"));
        assert!(parse_rows("256x0").unwrap_err().contains("at least one"));
        assert!(parse_rows("4qx2").unwrap_err().contains("payload"));
        assert!(parse_rows("256x50,256x50").unwrap_err().contains("twice"));
        assert!(parse_rows("").is_err());
        assert_eq!(parse_rows("1mx2").unwrap()[0].payload_bytes, 1 << 20);
        assert!(parse_rows("256x16n?")
            .unwrap_err()
            .contains("requests per connection"));
    }

    #[test]
    fn the_handshake_row_is_a_churn_row_and_a_default_one() {
        let row: Row = HANDSHAKE_ROW.parse().unwrap();
        assert_eq!((row.payload_bytes, row.clients), (256, 16));
        assert_eq!(row.requests_per_conn, Some(1));
        assert_eq!(row.to_string(), HANDSHAKE_ROW);
        assert!(parse_rows(DEFAULT_ROWS).unwrap().contains(&row));
        // The same workload with and without churn are two rows.
        assert_eq!(parse_rows("256x16,256x16n1,256x16n0").unwrap().len(), 3);
    }
}
