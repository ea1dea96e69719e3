//! Just enough of the protobuf wire format to find where each record sits.
//!
//! prost decodes messages into structs but drops unknown fields and forgets
//! where each field was in the input. The writer must keep every byte it does
//! not move, so the reader walks the wire format itself to record the byte
//! span of the graph and of every node record inside it.

use std::ops::Range;

/// One field of a message on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field number from the tag.
    pub number: u32,
    /// The wire type from the tag (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    pub wire_type: u8,
    /// The whole record: tag, length prefix (if any) and payload.
    pub record: Range<usize>,
    /// The payload alone (for length-delimited fields, the embedded bytes).
    pub payload: Range<usize>,
}

/// Why the bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Offset in the buffer where the problem was found.
    pub offset: usize,
    /// What is wrong there.
    pub what: &'static str,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let start = *pos;
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&byte) = buf.get(*pos) else {
            return Err(WireError { offset: start, what: "truncated varint" });
        };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(WireError { offset: start, what: "varint overflows 64 bits" });
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError { offset: start, what: "varint longer than 10 bytes" })
}

/// Splits `buf[range]` into its top-level fields, in order.
///
/// Groups (wire types 3 and 4, deprecated and unused by ONNX) are rejected.
pub fn fields(buf: &[u8], range: Range<usize>) -> Result<Vec<Field>, WireError> {
    let mut out = Vec::new();
    let end = range.end;
    let mut pos = range.start;
    let buf = &buf[..end];
    while pos < end {
        let start = pos;
        let tag = read_varint(buf, &mut pos)?;
        let number = (tag >> 3) as u32;
        let wire_type = (tag & 7) as u8;
        if number == 0 || tag >> 3 > u64::from(u32::MAX >> 3) {
            return Err(WireError { offset: start, what: "invalid field number" });
        }
        let payload = match wire_type {
            0 => {
                let p = pos;
                read_varint(buf, &mut pos)?;
                p..pos
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                if end - pos < width {
                    return Err(WireError { offset: start, what: "truncated fixed-width field" });
                }
                pos += width;
                pos - width..pos
            }
            2 => {
                let len = read_varint(buf, &mut pos)?;
                if len > (end - pos) as u64 {
                    return Err(WireError { offset: start, what: "length-delimited field runs past the end" });
                }
                let p = pos;
                pos += len as usize;
                p..pos
            }
            _ => return Err(WireError { offset: start, what: "unsupported wire type" }),
        };
        out.push(Field { number, wire_type, record: start..pos, payload });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fields_and_reports_spans() {
        // field 1 varint 150, field 2 bytes "hi", field 3 fixed32.
        let buf = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 2, 3, 4];
        let f = fields(&buf, 0..buf.len()).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].number, f[0].wire_type, f[0].record.clone()), (1, 0, 0..3));
        assert_eq!((f[1].number, f[1].payload.clone()), (2, 5..7));
        assert_eq!((f[2].number, f[2].record.clone()), (3, 7..12));
    }

    #[test]
    fn rejects_truncation_everywhere() {
        let buf = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 2, 3, 4];
        for cut in 1..buf.len() {
            if [3, 7].contains(&cut) {
                continue; // a cut between fields is a valid shorter message
            }
            assert!(fields(&buf[..cut], 0..cut).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn rejects_groups_and_field_zero() {
        assert!(fields(&[0x0b], 0..1).is_err());
        assert!(fields(&[0x00, 0x00], 0..2).is_err());
    }
}
