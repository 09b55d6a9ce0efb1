//! The tokio-rustls reference: a TLS 1.3 echo server built the way most Rust services would
//! build it (tokio + tokio-rustls), with the parameters STCP's `tls` mode is compared at: rustls
//! on aws-lc-rs, TLS 1.3 only, TLS13_AES_256_GCM_SHA384 only, X25519 only, no ALPN, no
//! resumption (no tickets, no session cache), no client certificate, an ECDSA P-256 self-signed
//! certificate (SANs localhost, 127.0.0.1, ::1) made with rcgen at start. Inside the TLS stream it
//! echoes the plain frames (4-byte big-endian length + payload).
//!
//! It is a yardstick for measuring (`stcp-loadgen --mode tls --target ADDR --server-cert FILE`
//! against it), not a product: frames are bounded, any error closes only its connection, and the
//! rest is as short as the echo allows.
//!
//! ```text
//! cargo run --release -p stcp-e2e --example tokio_tls_echo -- \
//!     --listen 127.0.0.1:7445 --threads 1 --cert-out tokio-tls.crt
//! ```
//!
//! It prints `listening on ADDR` once the certificate file is written (port 0 picks a free port).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::NoServerSessionStorage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Largest frame payload accepted (the load generator's default --max-frame).
const MAX_FRAME: usize = 16 << 20;
/// Frames up to this size are read whole and echoed in one write (one TLS record up to 16 KiB);
/// larger ones stream through in pieces of this size.
const CHUNK: usize = 64 * 1024;
/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    listen: SocketAddr,
    threads: usize,
    cert_out: PathBuf,
}

fn parse_options() -> Result<Options, String> {
    let mut listen: SocketAddr = "127.0.0.1:7445".parse().expect("a valid address");
    let mut threads = 1;
    let mut cert_out = PathBuf::from("tokio-tls.crt");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                listen = value()?
                    .parse()
                    .map_err(|e| format!("--listen: {e} (give IP:PORT)"))?
            }
            "--threads" => {
                threads = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--threads: give a positive number")?
            }
            "--cert-out" => cert_out = PathBuf::from(value()?),
            "--help" | "-h" => {
                return Err(
                    "usage: tokio_tls_echo [--listen IP:PORT] [--threads N] [--cert-out FILE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    Ok(Options {
        listen,
        threads,
        cert_out,
    })
}

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(why) => {
            eprintln!("tokio_tls_echo: {why}");
            std::process::exit(2);
        }
    };
    let (config, pem) = match server_config() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("tokio_tls_echo: {why}");
            std::process::exit(4);
        }
    };
    if let Err(e) = std::fs::write(&options.cert_out, pem) {
        eprintln!(
            "tokio_tls_echo: cannot write {}: {e}",
            options.cert_out.display()
        );
        std::process::exit(4);
    }
    let runtime = if options.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio_tls_echo: cannot start the runtime: {e}");
            std::process::exit(4);
        }
    };
    let served = runtime.block_on(async {
        let listener = TcpListener::bind(options.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        serve(listener, TlsAcceptor::from(config)).await
    });
    if let Err(e) = served {
        eprintln!("tokio_tls_echo: {e}");
        std::process::exit(4);
    }
}

/// The TLS configuration and the certificate's PEM (for the client to pin).
pub fn server_config() -> Result<(Arc<rustls::ServerConfig>, String), String> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot create the certificate: {e}"))?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384];
    provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| e.to_string())?;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok((Arc::new(config), certified.cert.pem()))
}

/// Accepts connections for ever, each served by its own task.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of descriptors and the like: the next accept may succeed.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            // Errors end this connection only.
            let _ = connection(acceptor, stream).await;
        });
    }
}

async fn connection(acceptor: TlsAcceptor, stream: TcpStream) -> std::io::Result<()> {
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let mut buf = vec![0u8; 4 + CHUNK];
    loop {
        // The frame header; the peer's close_notify (or FIN) between frames is a clean end.
        let mut got = 0;
        while got < 4 {
            let n = tls.read(&mut buf[got..4]).await?;
            if n == 0 {
                if got == 0 {
                    return tls.shutdown().await;
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got += n;
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        if len <= CHUNK {
            tls.read_exact(&mut buf[4..4 + len]).await?;
            tls.write_all(&buf[..4 + len]).await?;
        } else {
            tls.write_all(&buf[..4]).await?;
            let mut left = len;
            while left > 0 {
                let n = left.min(CHUNK);
                tls.read_exact(&mut buf[..n]).await?;
                tls.write_all(&buf[..n]).await?;
                left -= n;
            }
        }
        tls.flush().await?;
    }
}
