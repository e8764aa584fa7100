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

/// Decompresses when the bytes start with the gzip magic, then parses.
pub fn decode(bytes: &[u8], what: &Path) -> Result<Idx> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| Error::data(what, format!("corrupt gzip stream: {e}")))?;
        parse(&raw, what)
    } else {
        parse(bytes, what)
    }
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
}
