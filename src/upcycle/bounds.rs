//! A walk over a GGUF file's header (metadata and tensor table) that checks every length it
//! declares against the bytes the file has, before candle's reader allocates what they ask for:
//! a damaged or hostile file gets an error naming the entry, not an allocation of terabytes.

use std::io::Read;

/// Dimensions a GGML tensor may have.
const MAX_DIMS: u64 = 4;
/// Elements one byte of tensor data may hold (the densest GGML formats store under two bits
/// per weight; eight per byte leaves room).
const MAX_ELEMENTS_PER_BYTE: u64 = 8;
/// Nesting of metadata arrays.
const MAX_DEPTH: usize = 4;

struct Walk<R> {
    r: R,
    /// Bytes of the file not yet read.
    left: u64,
    /// Version 1 stores counts and lengths in 32 bits.
    v1: bool,
}

impl<R: Read> Walk<R> {
    fn take(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.left {
            return Err(format!(
                "{what} needs {n} bytes but only {} remain",
                self.left
            ));
        }
        self.left -= n;
        std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| format!("{what}: {e}"))?;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.bytes(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.bytes(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self, b: &mut [u8], what: &str) -> Result<(), String> {
        if b.len() as u64 > self.left {
            return Err(format!("{what}: the file ends"));
        }
        self.left -= b.len() as u64;
        self.r.read_exact(b).map_err(|e| format!("{what}: {e}"))
    }

    /// A count or length: 32 bits in version 1, 64 after.
    fn len(&mut self, what: &str) -> Result<u64, String> {
        if self.v1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn string(&mut self, what: &str) -> Result<(), String> {
        let n = self.len(what)?;
        self.take(n, what)
    }

    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<(), String> {
        match ty {
            0 | 1 | 7 => self.take(1, what),
            2 | 3 => self.take(2, what),
            4..=6 => self.take(4, what),
            10..=12 => self.take(8, what),
            8 => self.string(what),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("{what}: arrays nested deeper than {MAX_DEPTH}"));
                }
                let elem = self.u32(what)?;
                let count = self.len(what)?;
                // every element takes at least one byte (a string its length)
                if count > self.left {
                    return Err(format!(
                        "{what}: an array of {count} values in {} bytes",
                        self.left
                    ));
                }
                for _ in 0..count {
                    self.value(elem, what, depth + 1)?;
                }
                Ok(())
            }
            t => Err(format!("{what}: unknown value type {t}")),
        }
    }
}

/// Checks the header of a GGUF file of `file_len` bytes read from `r`; the error names the
/// entry whose length does not fit.
pub fn check_header(r: impl Read, file_len: u64) -> Result<(), String> {
    let mut w = Walk {
        r,
        left: file_len,
        v1: false,
    };
    let magic = w.u32("the magic number")?;
    if magic != u32::from_le_bytes(*b"GGUF") {
        return Err(format!("unknown magic {magic:#x}"));
    }
    let version = w.u32("the version")?;
    if !(1..=3).contains(&version) {
        return Err(format!("unknown version {version}"));
    }
    w.v1 = version == 1;
    let tensors = w.len("the tensor count")?;
    let kvs = w.len("the metadata count")?;
    // a metadata entry takes at least 13 bytes, a tensor entry at least 24
    if kvs
        .saturating_mul(13)
        .saturating_add(tensors.saturating_mul(24))
        > w.left
    {
        return Err(format!(
            "{kvs} metadata entries and {tensors} tensors do not fit in {file_len} bytes"
        ));
    }
    for i in 0..kvs {
        w.string(&format!("metadata entry {i}'s key"))?;
        let ty = w.u32(&format!("metadata entry {i}'s type"))?;
        w.value(ty, &format!("metadata entry {i}"), 0)?;
    }
    for i in 0..tensors {
        w.string(&format!("tensor {i}'s name"))?;
        let dims = w.u32(&format!("tensor {i}'s dimensions"))?;
        if u64::from(dims) > MAX_DIMS {
            return Err(format!("tensor {i} has {dims} dimensions"));
        }
        let mut elements = 1u64;
        for _ in 0..dims {
            let d = w.len(&format!("tensor {i}'s shape"))?;
            elements = elements.saturating_mul(d);
        }
        if elements > file_len.saturating_mul(MAX_ELEMENTS_PER_BYTE) {
            return Err(format!(
                "tensor {i} has {elements} elements, more than a {file_len}-byte file holds"
            ));
        }
        w.u32(&format!("tensor {i}'s type"))?;
        w.u64(&format!("tensor {i}'s offset"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-3 header with one string entry, one array entry and one tensor.
    fn header(string_len: u64, array_count: u64, dims: &[u64]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&2u64.to_le_bytes()); // metadata entries
        let key = |b: &mut Vec<u8>, k: &str| {
            b.extend_from_slice(&(k.len() as u64).to_le_bytes());
            b.extend_from_slice(k.as_bytes());
        };
        key(&mut b, "general.name");
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&string_len.to_le_bytes());
        b.extend(std::iter::repeat_n(b'x', 5));
        key(&mut b, "ids");
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&array_count.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, 12));
        key(&mut b, "w");
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, 64));
        b
    }

    #[test]
    fn lengths_beyond_the_file_are_named() {
        let ok = header(5, 3, &[4, 4]);
        assert_eq!(check_header(&ok[..], ok.len() as u64), Ok(()));
        let e = check_header(&header(1 << 60, 3, &[4])[..], 200).unwrap_err();
        assert!(
            e.starts_with("metadata entry 0") && e.contains("bytes"),
            "{e}"
        );
        let e = check_header(&header(5, 1 << 40, &[4])[..], 200).unwrap_err();
        assert!(e.contains("an array of 1099511627776 values"), "{e}");
        let e = check_header(&header(5, 3, &[1 << 40, 1 << 40])[..], 200).unwrap_err();
        assert!(e.contains("tensor 0 has"), "{e}");
        let e = check_header(&header(5, 3, &[1, 1, 1, 1, 1])[..], 200).unwrap_err();
        assert!(e.contains("5 dimensions"), "{e}");
        let e = check_header(&b"GGML0000"[..], 8).unwrap_err();
        assert!(e.contains("unknown magic"), "{e}");
    }
}
