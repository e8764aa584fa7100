//! IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed, with every header field checked.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A decoded IDX file of unsigned bytes.
#[derive(Clone, Debug)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already decompressed). `what` names the source in errors.
pub fn parse(bytes: &[u8], what: &Path) -> Result<Idx> {
    let err = |m: String| Error::data(what, m);
    if bytes.len() < 4 {
        return Err(err(format!(
            "file too short for an IDX header ({} bytes)",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "element type 0x{:02x} unsupported (only unsigned bytes, 0x08)",
            bytes[2]
        )));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 || ndims > 4 {
        return Err(err(format!("{ndims} dimensions (expected 1 to 4)")));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(err(format!(
            "truncated header: {} of {header} bytes",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let want = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err("dimensions overflow".into()))?;
    let have = bytes.len() - header;
    if have != want {
        return Err(err(format!(
            "{} data: header {dims:?} needs {want} bytes, file has {have}",
            if have < want { "truncated" } else { "trailing" }
        )));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Decompresses when the bytes start with the gzip magic, then parses. Decompression reads
/// the header first and then at most the data it declares (and one byte more, to report
/// trailing data): a small file that expands without bound is read only that far.
pub fn decode(bytes: &[u8], what: &Path) -> Result<Idx> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return parse(bytes, what);
    }
    let corrupt = |e: std::io::Error| Error::data(what, format!("corrupt gzip stream: {e}"));
    let mut gz = flate2::read::GzDecoder::new(bytes);
    let mut raw = Vec::new();
    // Magic and dimension count, then the dimensions: short reads are left to `parse`.
    (&mut gz).take(4).read_to_end(&mut raw).map_err(corrupt)?;
    let ndims = raw.get(3).map_or(0, |&n| n as u64).min(4);
    (&mut gz)
        .take(4 * ndims)
        .read_to_end(&mut raw)
        .map_err(corrupt)?;
    let declared = raw
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes(d.try_into().expect("4 bytes")) as u64)
        .try_fold(1u64, |a, d| a.checked_mul(d))
        .unwrap_or(u64::MAX);
    gz.take(declared.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(corrupt)?;
    parse(&raw, what)
}

/// Reads `dir/stem` or `dir/stem.gz`, whichever exists.
pub fn read(dir: &Path, stem: &str) -> Result<Idx> {
    let candidates = [dir.join(stem), dir.join(format!("{stem}.gz"))];
    let path: &PathBuf = candidates
        .iter()
        .find(|p| p.exists())
        .ok_or_else(|| Error::data(dir.join(stem), "not found (also tried .gz)".to_string()))?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    #[test]
    fn parses_and_rejects() {
        let p = Path::new("t.idx");
        let ok = parse(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6]), p).unwrap();
        assert_eq!(ok.dims, vec![2, 3]);
        assert_eq!(ok.data, vec![1, 2, 3, 4, 5, 6]);
        let e = parse(&idx(&[2, 3], &[1, 2, 3]), p).unwrap_err().to_string();
        assert!(
            e.contains("t.idx") && e.contains("truncated") && e.contains("needs 6 bytes"),
            "{e}"
        );
        let e = parse(&idx(&[2], &[1, 2, 3]), p).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
        let mut bad = idx(&[1], &[1]);
        bad[0] = 7;
        assert!(parse(&bad, p).unwrap_err().to_string().contains("magic"));
        let mut f32s = idx(&[1], &[1]);
        f32s[2] = 0x0d;
        assert!(parse(&f32s, p).unwrap_err().to_string().contains("0x0d"));
        assert!(parse(&[0, 0], p).is_err());
        assert!(decode(&[0x1f, 0x8b, 1, 2, 3], p)
            .unwrap_err()
            .to_string()
            .contains("gzip"));
    }

    /// A gzip bomb: 8 MiB of zeros behind a header declaring 16 bytes is read 17 bytes far,
    /// and reported as trailing data; a well-formed file decodes.
    #[test]
    fn gzip_is_read_only_as_far_as_the_header_declares() {
        use std::io::Write;
        let gz = |raw: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        };
        let p = Path::new("bomb.idx.gz");
        let bomb = gz(&idx(&[4, 4], &vec![0u8; 8 << 20]));
        assert!(bomb.len() < 64 << 10, "{} bytes compressed", bomb.len());
        let e = decode(&bomb, p).unwrap_err().to_string();
        assert!(e.contains("trailing") && e.contains("file has 17"), "{e}");
        let ok = decode(&gz(&idx(&[2, 2], &[1, 2, 3, 4])), p).unwrap();
        assert_eq!(ok.data, vec![1, 2, 3, 4]);
        let e = decode(&gz(&idx(&[2, 2], &[1, 2])), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
