//! ONNX element types: their storage size, their names, and how they map to
//! tract's `DatumType`.
//!
//! Sizes follow the ONNX packing rules: sub-byte types are packed, so a tensor
//! of `n` 4-bit elements takes `ceil(n / 2)` bytes, `n` 2-bit elements
//! `ceil(n / 4)` bytes and `n` 6-bit elements `ceil(6n / 8)` bytes. Strings
//! have no fixed size and `UNDEFINED` none at all.

use tract_onnx::prelude::DatumType;

/// ONNX `TensorProto.DataType` codes used in this module.
pub mod code {
    pub const UNDEFINED: i32 = 0;
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const COMPLEX64: i32 = 14;
    pub const COMPLEX128: i32 = 15;
    pub const BFLOAT16: i32 = 16;
    pub const FLOAT8E4M3FN: i32 = 17;
    pub const FLOAT8E4M3FNUZ: i32 = 18;
    pub const FLOAT8E5M2: i32 = 19;
    pub const FLOAT8E5M2FNUZ: i32 = 20;
    pub const UINT4: i32 = 21;
    pub const INT4: i32 = 22;
    pub const FLOAT4E2M1: i32 = 23;
    pub const FLOAT8E8M0: i32 = 24;
    pub const UINT2: i32 = 25;
    pub const INT2: i32 = 26;
    pub const FLOAT6E2M3: i32 = 27;
    pub const FLOAT6E3M2: i32 = 28;
}

/// Storage width of one element in bits, `None` for strings, `UNDEFINED` and
/// codes this schema does not define.
pub fn elem_bits(elem_type: i32) -> Option<u64> {
    use code::*;
    Some(match elem_type {
        BOOL | UINT8 | INT8 | FLOAT8E4M3FN | FLOAT8E4M3FNUZ | FLOAT8E5M2 | FLOAT8E5M2FNUZ | FLOAT8E8M0 => 8,
        UINT16 | INT16 | FLOAT16 | BFLOAT16 => 16,
        FLOAT | INT32 | UINT32 => 32,
        INT64 | UINT64 | DOUBLE | COMPLEX64 => 64,
        COMPLEX128 => 128,
        UINT4 | INT4 | FLOAT4E2M1 => 4,
        UINT2 | INT2 => 2,
        FLOAT6E2M3 | FLOAT6E3M2 => 6,
        _ => return None,
    })
}

/// Bytes taken by `count` elements of ONNX type `elem_type`
/// (`TensorProto.DataType`). Sub-byte types are packed and round up to whole
/// bytes (4-bit: `ceil(count / 2)`, 2-bit: `ceil(count / 4)`, 6-bit:
/// `ceil(6 count / 8)`). `None` for `STRING` (no fixed size), `UNDEFINED`,
/// unknown codes, and on overflow of `u64`.
pub fn elem_bytes(elem_type: i32, count: u64) -> Option<u64> {
    let bits = elem_bits(elem_type)?;
    if bits % 8 == 0 {
        count.checked_mul(bits / 8)
    } else {
        let total = u128::from(count) * u128::from(bits);
        u64::try_from(total.div_ceil(8)).ok()
    }
}

/// The schema's name of an element type (`FLOAT`, `INT64`, ...), for messages.
pub fn elem_name(elem_type: i32) -> String {
    use code::*;
    let name = match elem_type {
        UNDEFINED => "UNDEFINED",
        FLOAT => "FLOAT",
        UINT8 => "UINT8",
        INT8 => "INT8",
        UINT16 => "UINT16",
        INT16 => "INT16",
        INT32 => "INT32",
        INT64 => "INT64",
        STRING => "STRING",
        BOOL => "BOOL",
        FLOAT16 => "FLOAT16",
        DOUBLE => "DOUBLE",
        UINT32 => "UINT32",
        UINT64 => "UINT64",
        COMPLEX64 => "COMPLEX64",
        COMPLEX128 => "COMPLEX128",
        BFLOAT16 => "BFLOAT16",
        FLOAT8E4M3FN => "FLOAT8E4M3FN",
        FLOAT8E4M3FNUZ => "FLOAT8E4M3FNUZ",
        FLOAT8E5M2 => "FLOAT8E5M2",
        FLOAT8E5M2FNUZ => "FLOAT8E5M2FNUZ",
        UINT4 => "UINT4",
        INT4 => "INT4",
        FLOAT4E2M1 => "FLOAT4E2M1",
        FLOAT8E8M0 => "FLOAT8E8M0",
        UINT2 => "UINT2",
        INT2 => "INT2",
        FLOAT6E2M3 => "FLOAT6E2M3",
        FLOAT6E3M2 => "FLOAT6E3M2",
        other => return format!("data type {other}"),
    };
    name.to_string()
}

/// Whether tract-onnx 0.23 can represent tensors of this ONNX type. Tensors of
/// other types (bfloat16, float8, 4-bit, complex, ...) are hidden from tract:
/// it would refuse the whole model otherwise.
pub fn tract_supports(elem_type: i32) -> bool {
    use code::*;
    matches!(
        elem_type,
        FLOAT | UINT8 | INT8 | UINT16 | INT16 | INT32 | INT64 | STRING | BOOL | FLOAT16 | DOUBLE | UINT32 | UINT64
    )
}

/// Whether an initializer of this type holds floating-point weights, whose
/// values never decide a shape (so tract can get them as typed inputs).
pub fn is_float(elem_type: i32) -> bool {
    use code::*;
    matches!(
        elem_type,
        FLOAT
            | FLOAT16
            | DOUBLE
            | BFLOAT16
            | COMPLEX64
            | COMPLEX128
            | FLOAT8E4M3FN
            | FLOAT8E4M3FNUZ
            | FLOAT8E5M2
            | FLOAT8E5M2FNUZ
            | FLOAT4E2M1
            | FLOAT8E8M0
            | FLOAT6E2M3
            | FLOAT6E3M2
    )
}

/// The ONNX type of a tract datum type. tract's symbolic-dimension type
/// `TDim` (the output of `Shape` and what is computed from it) is ONNX
/// `INT64`; quantized types map to their storage type. `None` for types with
/// no ONNX counterpart (blobs, opaque values, complex integers).
pub fn from_tract(dt: DatumType) -> Option<i32> {
    use code::*;
    Some(match dt {
        DatumType::Bool => BOOL,
        DatumType::U8 | DatumType::QU8(_) => UINT8,
        DatumType::U16 => UINT16,
        DatumType::U32 => UINT32,
        DatumType::U64 => UINT64,
        DatumType::I8 | DatumType::QI8(_) => INT8,
        DatumType::I16 => INT16,
        DatumType::I32 | DatumType::QI32(_) => INT32,
        DatumType::I64 | DatumType::TDim => INT64,
        DatumType::F16 => FLOAT16,
        DatumType::F32 => FLOAT,
        DatumType::F64 => DOUBLE,
        DatumType::String => STRING,
        _ => return None,
    })
}

/// The tract datum type of an ONNX type that [`tract_supports`].
pub fn to_tract(elem_type: i32) -> Option<DatumType> {
    use code::*;
    Some(match elem_type {
        FLOAT => DatumType::F32,
        UINT8 => DatumType::U8,
        INT8 => DatumType::I8,
        UINT16 => DatumType::U16,
        INT16 => DatumType::I16,
        INT32 => DatumType::I32,
        INT64 => DatumType::I64,
        STRING => DatumType::String,
        BOOL => DatumType::Bool,
        FLOAT16 => DatumType::F16,
        DOUBLE => DatumType::F64,
        UINT32 => DatumType::U32,
        UINT64 => DatumType::U64,
        _ => return None,
    })
}
