//! A reader of Arrow IPC *stream* files (what Hugging Face `datasets` saves as
//! `data-*.arrow`), written from the Arrow columnar format specification: the flatbuffer
//! `Schema` and `RecordBatch` messages and the buffers they describe. Rows come out as JSON
//! objects, so tasks read Arrow and JSON lines the same way. Supported column types: null, bool,
//! signed and unsigned integers, float32/64, utf8 and binary (also large), list (also large and
//! fixed-size) and struct; uncompressed, little-endian, without dictionaries.

use serde_json::{Map, Number, Value};

/// What went wrong, without the file name (the caller adds it).
pub type ArrowResult<T> = std::result::Result<T, String>;

fn oob<T>() -> ArrowResult<T> {
    Err("truncated or malformed Arrow data (an offset points outside the file)".into())
}

/// Bounds-checked little-endian reads.
fn rd<const N: usize>(b: &[u8], at: usize) -> ArrowResult<[u8; N]> {
    match b.get(at..at.checked_add(N).ok_or("offset overflow")?) {
        Some(s) => Ok(s.try_into().map_err(|_| "slice length")?),
        None => oob(),
    }
}
fn u16_at(b: &[u8], at: usize) -> ArrowResult<u16> {
    Ok(u16::from_le_bytes(rd(b, at)?))
}
fn i32_at(b: &[u8], at: usize) -> ArrowResult<i32> {
    Ok(i32::from_le_bytes(rd(b, at)?))
}
fn u32_at(b: &[u8], at: usize) -> ArrowResult<u32> {
    Ok(u32::from_le_bytes(rd(b, at)?))
}
fn i64_at(b: &[u8], at: usize) -> ArrowResult<i64> {
    Ok(i64::from_le_bytes(rd(b, at)?))
}

/// A flatbuffer table: its position and the buffer.
#[derive(Clone, Copy)]
struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Table<'a> {
    fn root(buf: &'a [u8]) -> ArrowResult<Self> {
        Ok(Table {
            buf,
            pos: u32_at(buf, 0)? as usize,
        })
    }

    /// Absolute position of field `idx`, if present.
    fn field(&self, idx: usize) -> ArrowResult<Option<usize>> {
        let vt = (self.pos as i64 - i32_at(self.buf, self.pos)? as i64) as usize;
        let vt_len = u16_at(self.buf, vt)? as usize;
        let slot = 4 + 2 * idx;
        if slot + 2 > vt_len {
            return Ok(None);
        }
        let off = u16_at(self.buf, vt + slot)? as usize;
        Ok((off != 0).then_some(self.pos + off))
    }

    fn u8_or(&self, idx: usize, default: u8) -> ArrowResult<u8> {
        Ok(match self.field(idx)? {
            Some(p) => *self.buf.get(p).ok_or("truncated")?,
            None => default,
        })
    }

    fn i16_or(&self, idx: usize, default: i16) -> ArrowResult<i16> {
        Ok(match self.field(idx)? {
            Some(p) => i16::from_le_bytes(rd(self.buf, p)?),
            None => default,
        })
    }

    fn i32_or(&self, idx: usize, default: i32) -> ArrowResult<i32> {
        Ok(match self.field(idx)? {
            Some(p) => i32_at(self.buf, p)?,
            None => default,
        })
    }

    fn i64_or(&self, idx: usize, default: i64) -> ArrowResult<i64> {
        Ok(match self.field(idx)? {
            Some(p) => i64_at(self.buf, p)?,
            None => default,
        })
    }

    fn table(&self, idx: usize) -> ArrowResult<Option<Table<'a>>> {
        Ok(match self.field(idx)? {
            Some(p) => Some(Table {
                buf: self.buf,
                pos: p + u32_at(self.buf, p)? as usize,
            }),
            None => None,
        })
    }

    fn string(&self, idx: usize) -> ArrowResult<String> {
        let Some(p) = self.field(idx)? else {
            return Ok(String::new());
        };
        let s = p + u32_at(self.buf, p)? as usize;
        let n = u32_at(self.buf, s)? as usize;
        let bytes = self.buf.get(s + 4..s + 4 + n).ok_or("truncated string")?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// (first element position, length) of a vector field.
    fn vector(&self, idx: usize) -> ArrowResult<(usize, usize)> {
        let Some(p) = self.field(idx)? else {
            return Ok((0, 0));
        };
        let v = p + u32_at(self.buf, p)? as usize;
        Ok((v + 4, u32_at(self.buf, v)? as usize))
    }

    fn tables(&self, idx: usize) -> ArrowResult<Vec<Table<'a>>> {
        let (start, n) = self.vector(idx)?;
        (0..n)
            .map(|i| {
                let p = start + 4 * i;
                Ok(Table {
                    buf: self.buf,
                    pos: p + u32_at(self.buf, p)? as usize,
                })
            })
            .collect()
    }
}

/// A column's type.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Null,
    Bool,
    Int { bits: u32, signed: bool },
    Float { bits: u32 },
    Utf8 { large: bool },
    Binary { large: bool },
    List { large: bool },
    FixedList(usize),
    Struct,
}

/// A schema field.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Kind,
    children: Vec<Field>,
}

fn parse_field(t: Table) -> ArrowResult<Field> {
    let name = t.string(0)?;
    if t.table(4)?.is_some() {
        return Err(format!(
            "column `{name}` is dictionary-encoded (not supported)"
        ));
    }
    let ty = t.table(3)?;
    let kind = match t.u8_or(2, 0)? {
        1 => Kind::Null,
        2 => {
            let ty = ty.ok_or("Int type without parameters")?;
            let bits = ty.i32_or(0, 0)?;
            if ![8, 16, 32, 64].contains(&bits) {
                return Err(format!("column `{name}`: integers of {bits} bits"));
            }
            Kind::Int {
                bits: bits as u32,
                signed: ty.u8_or(1, 0)? != 0,
            }
        }
        3 => {
            let p = ty.map_or(Ok(0), |t| t.i16_or(0, 0))?;
            match p {
                1 => Kind::Float { bits: 32 },
                2 => Kind::Float { bits: 64 },
                _ => return Err(format!("column `{name}`: half floats are not supported")),
            }
        }
        4 => Kind::Binary { large: false },
        5 => Kind::Utf8 { large: false },
        6 => Kind::Bool,
        12 => Kind::List { large: false },
        13 => Kind::Struct,
        16 => Kind::FixedList(ty.ok_or("FixedSizeList without size")?.i32_or(0, 0)? as usize),
        19 => Kind::Binary { large: true },
        20 => Kind::Utf8 { large: true },
        21 => Kind::List { large: true },
        other => {
            return Err(format!(
                "column `{name}` has Arrow type {other}, which moecap does not read"
            ))
        }
    };
    let children = t
        .tables(5)?
        .into_iter()
        .map(parse_field)
        .collect::<ArrowResult<_>>()?;
    Ok(Field {
        name,
        kind,
        children,
    })
}

/// The nodes and buffers of one record batch, consumed in schema order.
struct Batch<'a> {
    body: &'a [u8],
    nodes: std::vec::IntoIter<(usize, usize)>,
    buffers: std::vec::IntoIter<(usize, usize)>,
    /// Values the batch may still decode (every row of every column and struct field).
    budget: usize,
}

impl<'a> Batch<'a> {
    /// Takes `n` values from the budget: a corrupt length stops here, before the room for its
    /// values is reserved.
    fn spend(&mut self, n: usize) -> ArrowResult<()> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            format!("a record batch of more than {MAX_BATCH_CELLS} values: a corrupt length")
        })?;
        Ok(())
    }

    fn node(&mut self) -> ArrowResult<(usize, usize)> {
        self.nodes
            .next()
            .ok_or_else(|| "fewer field nodes than columns".into())
    }

    fn buffer(&mut self) -> ArrowResult<&'a [u8]> {
        let (off, len) = self
            .buffers
            .next()
            .ok_or("fewer buffers than the columns need")?;
        match self.body.get(off..off + len) {
            Some(b) => Ok(b),
            None => oob(),
        }
    }
}

fn valid(bitmap: &[u8], nulls: usize, i: usize) -> bool {
    nulls == 0 || bitmap.is_empty() || (bitmap.get(i / 8).copied().unwrap_or(0) >> (i % 8)) & 1 == 1
}

/// Rows one column of one record batch may hold (datasets write batches of thousands). The
/// length comes from the file; a column whose rows take no bytes (nulls, zero-width values,
/// empty fixed-size lists) would otherwise be bounded by nothing.
const MAX_BATCH_ROWS: usize = 1 << 22;

/// Values (rows × columns, nested ones included) one record batch may decode to.
const MAX_BATCH_CELLS: usize = 1 << 24;

/// Checks that `buf` holds `n` values of `width` bytes before any of them is read or any room
/// is reserved for them (a corrupt length must not become an allocation).
fn holds(buf: &[u8], n: usize, width: usize, what: &str) -> ArrowResult<()> {
    match n.checked_mul(width) {
        Some(bytes) if bytes <= buf.len() => Ok(()),
        _ => Err(format!(
            "truncated {what}: {n} values do not fit in {} bytes",
            buf.len()
        )),
    }
}

fn offsets(buf: &[u8], large: bool, n: usize) -> ArrowResult<Vec<usize>> {
    let count = n.checked_add(1).ok_or("row count out of range")?;
    holds(buf, count, if large { 8 } else { 4 }, "offsets")?;
    (0..=n)
        .map(|i| {
            let v = if large {
                i64_at(buf, 8 * i)?
            } else {
                i32_at(buf, 4 * i)? as i64
            };
            usize::try_from(v).map_err(|_| "negative offset".to_string())
        })
        .collect()
}

/// Decodes one column (and its children) of a batch into one JSON value per row.
fn decode(f: &Field, b: &mut Batch) -> ArrowResult<Vec<Value>> {
    let (n, nulls) = b.node()?;
    if n > MAX_BATCH_ROWS {
        return Err(format!(
            "a column of {n} rows in one batch is beyond {MAX_BATCH_ROWS}: a corrupt length"
        ));
    }
    b.spend(n)?;
    if f.kind == Kind::Null {
        return Ok(vec![Value::Null; n]);
    }
    let validity = b.buffer()?;
    let ok = |i: usize| valid(validity, nulls, i);
    let out = match &f.kind {
        Kind::Null => unreachable!("handled above"),
        Kind::Bool => {
            let v = b.buffer()?;
            holds(v, n.div_ceil(8), 1, "booleans")?;
            (0..n)
                .map(|i| {
                    if ok(i) {
                        Value::Bool(valid(v, 1, i))
                    } else {
                        Value::Null
                    }
                })
                .collect()
        }
        Kind::Int { bits, signed } => {
            let v = b.buffer()?;
            let w = (*bits / 8) as usize;
            holds(v, n, w, "integers")?;
            (0..n)
                .map(|i| {
                    if !ok(i) {
                        return Ok(Value::Null);
                    }
                    let bytes = v.get(i * w..(i + 1) * w).ok_or("truncated integers")?;
                    let mut raw = [0u8; 8];
                    raw[..w].copy_from_slice(bytes);
                    let u = u64::from_le_bytes(raw);
                    Ok(if *signed {
                        let shift = 64 - 8 * w as u32;
                        Value::from(((u << shift) as i64) >> shift)
                    } else {
                        Value::from(u)
                    })
                })
                .collect::<ArrowResult<_>>()?
        }
        Kind::Float { bits } => {
            let v = b.buffer()?;
            holds(v, n, (*bits / 8) as usize, "floats")?;
            (0..n)
                .map(|i| {
                    if !ok(i) {
                        return Ok(Value::Null);
                    }
                    let x = if *bits == 32 {
                        f32::from_le_bytes(rd(v, 4 * i)?) as f64
                    } else {
                        f64::from_le_bytes(rd(v, 8 * i)?)
                    };
                    Ok(Number::from_f64(x).map_or(Value::Null, Value::Number))
                })
                .collect::<ArrowResult<_>>()?
        }
        Kind::Utf8 { large } | Kind::Binary { large } => {
            let offs = offsets(b.buffer()?, *large, n)?;
            let data = b.buffer()?;
            (0..n)
                .map(|i| {
                    if !ok(i) {
                        return Ok(Value::Null);
                    }
                    let s = data.get(offs[i]..offs[i + 1]).ok_or("truncated strings")?;
                    Ok(Value::String(String::from_utf8_lossy(s).into_owned()))
                })
                .collect::<ArrowResult<_>>()?
        }
        Kind::List { .. } | Kind::FixedList(_) => {
            // a list's items sit between consecutive offsets (fixed-size lists have implied ones)
            let listed = match &f.kind {
                Kind::List { large } => Some(offsets(b.buffer()?, *large, n)?),
                _ => None,
            };
            let child = f.children.first().ok_or("list without a child field")?;
            let items = decode(child, b)?;
            let offs = match (listed, &f.kind) {
                (Some(o), _) => o,
                (None, Kind::FixedList(size)) => {
                    if n.checked_mul(*size).is_none_or(|m| m > items.len()) {
                        return Err(format!(
                            "{n} lists of {size} items, but the child has {}",
                            items.len()
                        ));
                    }
                    (0..=n).map(|i| i * size).collect()
                }
                _ => unreachable!("matched above"),
            };
            (0..n)
                .map(|i| {
                    if !ok(i) {
                        return Ok(Value::Null);
                    }
                    let s = items
                        .get(offs[i]..offs[i + 1])
                        .ok_or("list offsets past its items")?;
                    Ok(Value::Array(s.to_vec()))
                })
                .collect::<ArrowResult<_>>()?
        }
        Kind::Struct => {
            let cols: Vec<(String, Vec<Value>)> = f
                .children
                .iter()
                .map(|c| Ok((c.name.clone(), decode(c, b)?)))
                .collect::<ArrowResult<_>>()?;
            let longest = cols.iter().map(|(_, v)| v.len()).max();
            if n > longest.unwrap_or(MAX_BATCH_ROWS) {
                return Err(format!("a struct column of {n} rows has shorter fields"));
            }
            b.spend(n.saturating_mul(cols.len()))?;
            (0..n)
                .map(|i| {
                    if !ok(i) {
                        return Value::Null;
                    }
                    let mut m = Map::new();
                    for (name, vals) in &cols {
                        m.insert(name.clone(), vals.get(i).cloned().unwrap_or(Value::Null));
                    }
                    Value::Object(m)
                })
                .collect()
        }
    };
    Ok(out)
}

fn structs(t: &Table, idx: usize) -> ArrowResult<Vec<(usize, usize)>> {
    let (start, n) = t.vector(idx)?;
    (0..n)
        .map(|i| {
            let p = start + 16 * i;
            let a = usize::try_from(i64_at(t.buf, p)?).map_err(|_| "negative length")?;
            let b = usize::try_from(i64_at(t.buf, p + 8)?).map_err(|_| "negative length")?;
            Ok((a, b))
        })
        .collect()
}

/// Reads every row of an Arrow IPC stream as a JSON object (column name → value).
pub fn read_stream(data: &[u8]) -> ArrowResult<Vec<Value>> {
    let mut at = 0usize;
    let mut schema: Option<Vec<Field>> = None;
    let mut rows = Vec::new();
    while at + 4 <= data.len() {
        let mut len = i32_at(data, at)?;
        at += 4;
        if len == -1 {
            // continuation marker, then the length
            len = i32_at(data, at)?;
            at += 4;
        }
        if len == 0 {
            break; // end of stream
        }
        let len = usize::try_from(len).map_err(|_| "negative message length")?;
        let meta = data.get(at..at + len).ok_or("truncated message")?;
        at += len;
        let msg = Table::root(meta)?;
        let header_type = msg.u8_or(1, 0)?;
        let body_len = usize::try_from(msg.i64_or(3, 0)?).map_err(|_| "negative body length")?;
        let body = data
            .get(at..at + body_len)
            .ok_or("truncated message body")?;
        at += body_len;
        let header = msg.table(2)?.ok_or("message without a header")?;
        match header_type {
            1 => {
                if header.i16_or(0, 0)? != 0 {
                    return Err("big-endian Arrow data is not supported".into());
                }
                schema = Some(
                    header
                        .tables(1)?
                        .into_iter()
                        .map(parse_field)
                        .collect::<ArrowResult<_>>()?,
                );
            }
            2 => return Err("dictionary batches are not supported".into()),
            3 => {
                let fields = schema.as_ref().ok_or("a record batch before the schema")?;
                if header.table(3)?.is_some() {
                    return Err("compressed record batches are not supported".into());
                }
                let n = usize::try_from(header.i64_or(0, 0)?).map_err(|_| "negative row count")?;
                let mut b = Batch {
                    body,
                    nodes: structs(&header, 1)?.into_iter(),
                    buffers: structs(&header, 2)?.into_iter(),
                    budget: MAX_BATCH_CELLS,
                };
                let cols: Vec<Vec<Value>> = fields
                    .iter()
                    .map(|f| decode(f, &mut b))
                    .collect::<ArrowResult<_>>()?;
                if n > cols.iter().map(Vec::len).max().unwrap_or(0) {
                    return Err(format!("a record batch of {n} rows has shorter columns"));
                }
                b.spend(n.saturating_mul(fields.len()))?;
                for i in 0..n {
                    let mut m = Map::new();
                    for (f, c) in fields.iter().zip(&cols) {
                        m.insert(f.name.clone(), c.get(i).cloned().unwrap_or(Value::Null));
                    }
                    rows.push(Value::Object(m));
                }
            }
            other => return Err(format!("unexpected Arrow message type {other}")),
        }
    }
    if schema.is_none() {
        return Err("no Arrow schema message: not an Arrow IPC stream".into());
    }
    Ok(rows)
}
