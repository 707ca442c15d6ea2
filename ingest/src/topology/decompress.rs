//! The intake body's content encoding: identity, gzip or deflate, bounded.

use std::io::Read;

use crate::error::IngestError;

/// Identity, gzip or deflate (zlib, or raw deflate as some clients send), bounded.
pub(super) fn decompress(
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, IngestError> {
    let reader: Box<dyn Read + '_> = match encoding {
        None | Some("") | Some("identity") => return Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Some("deflate") => {
            // RFC 9110's deflate is zlib-wrapped; raw deflate is common enough to accept.
            let zlib_header = body.len() >= 2
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0
                && body[0] & 0x0f == 8;
            if zlib_header {
                Box::new(flate2::read::ZlibDecoder::new(body))
            } else {
                Box::new(flate2::read::DeflateDecoder::new(body))
            }
        }
        Some(other) => {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported content encoding {other:?}: the intake takes identity, gzip or deflate"
            )));
        }
    };
    let mut json = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| {
            IngestError::BadRequest(format!(
                "corrupt {} body: {e}",
                encoding.unwrap_or_default()
            ))
        })?;
    if json.len() > limit {
        return Err(IngestError::PayloadTooLarge(format!(
            "decompressed body is over the limit of {limit} bytes"
        )));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_and_deflate_bodies_are_read_within_the_limit() {
        use std::io::Write;
        let json = br#"{"topologies": []}"#;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(json).unwrap();
        assert_eq!(
            decompress(Some("gzip"), &gzip.finish().unwrap(), 1024).unwrap(),
            json
        );
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(json).unwrap();
        assert_eq!(
            decompress(Some("deflate"), &zlib.finish().unwrap(), 1024).unwrap(),
            json
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(json).unwrap();
        assert_eq!(
            decompress(Some("deflate"), &raw.finish().unwrap(), 1024).unwrap(),
            json
        );
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![b' '; 1 << 20]).unwrap();
        assert!(matches!(
            decompress(Some("gzip"), &bomb.finish().unwrap(), 1024),
            Err(IngestError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            decompress(Some("br"), json, 1024),
            Err(IngestError::UnsupportedMediaType(_))
        ));
    }
}
