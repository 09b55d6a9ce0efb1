//! Do the connections fit under the open-file limit? Every connection is a socket, and with the
//! server embedded in this process its side of every connection is one more; rings, listeners
//! and files take a few besides. A run that cannot fit is refused before it connects, with the
//! numbers and the ways out, instead of failing connection by connection with "too many open
//! files" on both sides.

use stcp_server::fd_limit::{self, FdLimit, BASE_FDS, FDS_PER_WORKER};

/// The descriptors a run needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// Connections (`--clients`).
    pub clients: u64,
    /// Client threads: one ring each.
    pub threads: u64,
    /// The embedded server's workers; None against an external server.
    pub embedded_workers: Option<u64>,
}

impl FdBudget {
    /// Descriptors besides one per client socket: rings, the embedded server's listeners, files.
    fn overhead(&self) -> u64 {
        self.threads + self.embedded_workers.map_or(0, |w| w * FDS_PER_WORKER) + BASE_FDS
    }

    /// Descriptors each connection takes: its socket, and the embedded server's side of it.
    fn per_client(&self) -> u64 {
        if self.embedded_workers.is_some() {
            2
        } else {
            1
        }
    }

    /// Every descriptor the run needs.
    pub fn needed(&self) -> u64 {
        self.clients * self.per_client() + self.overhead()
    }

    /// Ok when the run fits under `limit`.
    pub fn check(&self, limit: FdLimit) -> Result<(), FdShortage> {
        if limit.holds(self.needed()) {
            Ok(())
        } else {
            Err(FdShortage {
                budget: *self,
                limit,
            })
        }
    }
}

/// A run that does not fit under the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdShortage {
    pub budget: FdBudget,
    pub limit: FdLimit,
}

impl std::fmt::Display for FdShortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.budget;
        let needed = b.needed();
        let soft = self.limit.soft;
        let fit = |budget: FdBudget| soft.saturating_sub(budget.overhead()) / budget.per_client();
        write!(
            f,
            "--clients {} needs about {needed} open files ({} client sockets",
            b.clients, b.clients
        )?;
        if b.embedded_workers.is_some() {
            write!(f, " + {} for the embedded server's side", b.clients)?;
        }
        write!(
            f,
            " + {} for rings, listeners and files) but the limit is {} (hard limit {}): raise it \
             (ulimit -n {needed}; beyond the hard limit only root can), or use --clients {} or \
             fewer",
            b.overhead(),
            fd_limit::show(soft),
            fd_limit::show(self.limit.hard),
            fit(*b),
        )?;
        if b.embedded_workers.is_some() {
            let external = FdBudget {
                embedded_workers: None,
                ..*b
            };
            write!(
                f,
                ", or run stcp-server as its own process and give --target (then up to {} \
                 clients fit here)",
                fit(external)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for FdShortage {}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: FdLimit = FdLimit {
        soft: 20_000,
        hard: 20_000,
    };

    #[test]
    fn the_embedded_server_doubles_the_sockets() {
        let embedded = FdBudget {
            clients: 25_000,
            threads: 1,
            embedded_workers: Some(1),
        };
        assert_eq!(embedded.needed(), 50_000 + 1 + 4 + 32);
        let shortage = embedded.check(LIMIT).unwrap_err();
        let line = shortage.to_string();
        assert_eq!(
            line,
            "--clients 25000 needs about 50037 open files (25000 client sockets + 25000 for the \
             embedded server's side + 37 for rings, listeners and files) but the limit is 20000 \
             (hard limit 20000): raise it (ulimit -n 50037; beyond the hard limit only root \
             can), or use --clients 9981 or fewer, or run stcp-server as its own process and \
             give --target (then up to 19967 clients fit here)"
        );
        let fits = FdBudget {
            clients: 9_981,
            ..embedded
        };
        assert!(fits.check(LIMIT).is_ok());
        assert!(FdBudget {
            clients: 9_982,
            ..embedded
        }
        .check(LIMIT)
        .is_err());
    }

    #[test]
    fn against_an_external_server_only_the_client_sockets_count() {
        let external = FdBudget {
            clients: 25_000,
            threads: 2,
            embedded_workers: None,
        };
        assert_eq!(external.needed(), 25_034);
        let line = external.check(LIMIT).unwrap_err().to_string();
        assert!(line.ends_with("use --clients 19966 or fewer"), "{line}");
        assert!(!line.contains("embedded"));
    }
}
