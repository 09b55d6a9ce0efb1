//! Shared pieces of the stcp-proto fuzz targets in `fuzz_targets/`: how an
//! input is read ([`input`]), the fixed-seed sessions they start from
//! ([`fixture`]), the genuine stream prefixes an input may ask for
//! ([`genuine`]), and what they assert ([`oracle`]). `examples/gen_corpus.rs`
//! writes the seed corpora from the same pieces.

pub mod fixture;
pub mod genuine;
pub mod input;
pub mod oracle;
