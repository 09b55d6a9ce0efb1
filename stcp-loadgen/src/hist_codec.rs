//! Histograms in reports: HdrHistogram V2 compressed encoding (the format of HdrHistogram's own
//! interval logs, readable by its Java, C, Go and Python ports), then standard base64. Decoding
//! gives back exactly the counts that were encoded, which is what makes `merge` exact.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::stats::{self, LatencyHistogram};

#[derive(Debug, thiserror::Error)]
pub enum HistogramCodecError {
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not HdrHistogram V2: {0:?}")]
    Format(hdrhistogram::serialization::DeserializeError),
    #[error("histogram has bounds other than 1 µs..60 s at 3 digits, so it cannot be merged")]
    Bounds,
}

/// Encodes a histogram as base64 of its V2 compressed serialization.
pub fn encode(histogram: &LatencyHistogram) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into a Vec cannot fail");
    STANDARD.encode(bytes)
}

/// Decodes what [`encode`] wrote into a histogram with the report's standard bounds.
pub fn decode(text: &str) -> Result<LatencyHistogram, HistogramCodecError> {
    let bytes = STANDARD.decode(text.trim())?;
    let decoded: LatencyHistogram = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramCodecError::Format)?;
    // Re-home into a histogram with the standard bounds so every decoded histogram can be added
    // to every other one; refuse histograms whose resolution differs (their counts would not map 1:1).
    if decoded.low() != stats::LOWEST_DISCERNIBLE_NS
        || decoded.sigfig() != stats::SIGNIFICANT_DIGITS
    {
        return Err(HistogramCodecError::Bounds);
    }
    let mut standard = stats::new_histogram();
    standard
        .add(&decoded)
        .map_err(|_| HistogramCodecError::Bounds)?;
    Ok(standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact() {
        let mut h = stats::new_histogram();
        for i in 0..10_000u64 {
            stats::record_ns(&mut h, 1_000 + i * i * 37);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.value_at_quantile(0.999), h.value_at_quantile(0.999));
    }

    #[test]
    fn empty_histogram_round_trips() {
        let h = stats::new_histogram();
        assert_eq!(decode(&encode(&h)).unwrap(), h);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode("not base64 !!").is_err());
        assert!(decode("SElTVEZBQUFBQQ==").is_err());
        assert!(decode("").is_err());
    }
}
