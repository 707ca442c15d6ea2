//! First stage of a write: which protocol the body speaks (by Content-Type),
//! whether we can read its encoding, and snappy decompression with the declared
//! length checked before anything is allocated.

use thiserror::Error;

pub use proto::Protocol;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "unsupported content type {0:?}: send application/x-protobuf with proto=prometheus.WriteRequest or proto=io.prometheus.write.v2.Request"
    )]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: remote write bodies are snappy (block format)")]
    UnsupportedContentEncoding(String),
    #[error("corrupt snappy body: {0}")]
    CorruptSnappy(String),
    #[error("snappy header declares {declared} decompressed bytes, more than the limit of {limit}")]
    DecodedTooLarge { declared: usize, limit: usize },
}

/// Picks the protocol from the Content-Type, tolerating spaces, case and extra parameters.
/// An absent Content-Type means remote-write 1.0, as Prometheus's own receiver does.
pub fn protocol_of(content_type: Option<&str>) -> Result<Protocol, DecodeError> {
    let Some(content_type) = content_type else {
        return Ok(Protocol::V1);
    };
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(DecodeError::UnsupportedContentType(
            content_type.to_string(),
        ));
    }
    let mut protocol = Protocol::V1;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        protocol = match value.trim().trim_matches('"') {
            "prometheus.WriteRequest" => Protocol::V1,
            "io.prometheus.write.v2.Request" => Protocol::V2,
            _ => {
                return Err(DecodeError::UnsupportedContentType(
                    content_type.to_string(),
                ));
            }
        };
    }
    Ok(protocol)
}

/// Remote write is snappy only; an absent header is tolerated as snappy.
pub fn check_content_encoding(content_encoding: Option<&str>) -> Result<(), DecodeError> {
    match content_encoding.map(str::trim) {
        None | Some("") => Ok(()),
        Some(encoding) if encoding.eq_ignore_ascii_case("snappy") => Ok(()),
        Some(encoding) => Err(DecodeError::UnsupportedContentEncoding(
            encoding.to_string(),
        )),
    }
}

/// The decompressed length a snappy block declares, refused above `limit`
/// before any buffer is allocated for it.
pub fn declared_length(body: &[u8], limit: usize) -> Result<usize, DecodeError> {
    // The block starts with the decompressed length as a varint. Read it
    // ourselves: the snappy crate calls anything over 4 GiB corrupt, but a
    // sender declaring it is asking for too much, not sending garbage.
    let mut position = 0;
    let declared = proto::wire::read_varint(body, &mut position)
        .map_err(|_| DecodeError::CorruptSnappy("missing or malformed length header".into()))?;
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    if declared > limit {
        return Err(DecodeError::DecodedTooLarge { declared, limit });
    }
    snap::raw::decompress_len(body).map_err(|e| DecodeError::CorruptSnappy(e.to_string()))
}

/// Decompresses a snappy block whose declared length `declared_length` accepted.
pub fn decompress(body: &[u8], declared: usize) -> Result<Vec<u8>, DecodeError> {
    let mut raw = vec![0u8; declared];
    let written = snap::raw::Decoder::new()
        .decompress(body, &mut raw)
        .map_err(|e| DecodeError::CorruptSnappy(e.to_string()))?;
    raw.truncate(written);
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_parsed_tolerantly() {
        assert_eq!(protocol_of(None), Ok(Protocol::V1));
        assert_eq!(
            protocol_of(Some("application/x-protobuf")),
            Ok(Protocol::V1)
        );
        assert_eq!(
            protocol_of(Some(
                "Application/X-Protobuf ; proto=prometheus.WriteRequest"
            )),
            Ok(Protocol::V1)
        );
        assert_eq!(
            protocol_of(Some(
                "application/x-protobuf;proto=io.prometheus.write.v2.Request"
            )),
            Ok(Protocol::V2)
        );
        assert_eq!(
            protocol_of(Some(
                "application/x-protobuf; charset=utf-8; PROTO=\"io.prometheus.write.v2.Request\""
            )),
            Ok(Protocol::V2)
        );
        assert!(protocol_of(Some("application/json")).is_err());
        assert!(protocol_of(Some("application/x-protobuf;proto=foo.Bar")).is_err());
    }

    #[test]
    fn only_snappy_is_accepted() {
        assert!(check_content_encoding(None).is_ok());
        assert!(check_content_encoding(Some("SNAPPY")).is_ok());
        assert!(check_content_encoding(Some("gzip")).is_err());
        assert!(check_content_encoding(Some("deflate")).is_err());
    }

    #[test]
    fn declared_length_is_checked_before_allocating() {
        // A varint header declaring 4 GiB, and nothing behind it.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x10];
        assert_eq!(
            declared_length(&bomb, 32 << 20),
            Err(DecodeError::DecodedTooLarge {
                declared: 4 << 30,
                limit: 32 << 20
            })
        );
        let body = snap::raw::Encoder::new()
            .compress_vec(b"hello hello hello")
            .unwrap();
        let declared = declared_length(&body, 1024).unwrap();
        assert_eq!(decompress(&body, declared).unwrap(), b"hello hello hello");
        assert!(matches!(
            decompress(&body[..body.len() - 2], declared),
            Err(DecodeError::CorruptSnappy(_))
        ));
    }
}
