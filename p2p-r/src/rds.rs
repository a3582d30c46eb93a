//! RDS files of future.p2p 0.4.0's results, written without R (sans-IO).
//!
//! A client of future.p2p 0.4.0 reads its future's outcome with `readRDS()` and needs a
//! `FutureResult`; it has no other error channel. When a worker cannot produce one in R
//! (the payload is unreadable, R crashed, the time limit struck, the client withdrew the
//! future), [`failure_result`] writes a `FutureResult` carrying a `FutureError` condition,
//! which the client's `value()` raises like any error of the future.
//!
//! The writer covers the R objects such a result needs: `NULL`, logical, integer and
//! character vectors, lists, and attributes. The stream is R's serialization format 3,
//! XDR (big-endian), gzip-compressed as `saveRDS()` writes it, byte for byte what R 4.2
//! writes for the same object after the header's writer version.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;

/// An R value with its attributes (`names`, `class`, ...), in the order R keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RObject {
    pub value: RValue,
    pub attributes: Vec<(String, RObject)>,
}

/// The types [`RObject`] can hold; `None` elements are R's `NA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RValue {
    Null,
    Logical(Vec<Option<bool>>),
    Integer(Vec<Option<i32>>),
    Character(Vec<Option<String>>),
    List(Vec<RObject>),
}

impl RObject {
    /// `NULL`.
    pub fn null() -> RObject {
        RObject::plain(RValue::Null)
    }

    /// A value without attributes.
    pub fn plain(value: RValue) -> RObject {
        RObject {
            value,
            attributes: Vec::new(),
        }
    }

    /// A character vector of one string.
    pub fn string(text: &str) -> RObject {
        RObject::plain(RValue::Character(vec![Some(text.to_owned())]))
    }

    /// `list(name = value, ...)`, with its `names` attribute.
    pub fn named_list(fields: Vec<(&str, RObject)>) -> RObject {
        let names = fields
            .iter()
            .map(|(name, _)| Some((*name).to_owned()))
            .collect();
        RObject {
            value: RValue::List(fields.into_iter().map(|(_, value)| value).collect()),
            attributes: vec![("names".to_owned(), RObject::plain(RValue::Character(names)))],
        }
    }

    /// The object with a `class` attribute: an S3 object.
    pub fn with_class(mut self, classes: &[&str]) -> RObject {
        let classes = classes.iter().map(|c| Some((*c).to_owned())).collect();
        self.attributes.push((
            "class".to_owned(),
            RObject::plain(RValue::Character(classes)),
        ));
        self
    }
}

/// Serialization format 3 (R >= 3.5.0).
const FORMAT_VERSION: i32 = 3;
/// The R version written as the writer's: 4.2.2, the R these files were checked against.
const WRITER_VERSION: i32 = (4 << 16) | (2 << 8) | 2;
/// The oldest R that reads format 3: 3.5.0.
const MIN_READER_VERSION: i32 = (3 << 16) | (5 << 8);

mod sexp {
    pub const SYM: i32 = 1;
    pub const LIST: i32 = 2;
    pub const CHAR: i32 = 9;
    pub const LGL: i32 = 10;
    pub const INT: i32 = 13;
    pub const STR: i32 = 16;
    pub const VEC: i32 = 19;
    pub const REF: i32 = 255;
    pub const NIL_VALUE: i32 = 254;
}

const IS_OBJECT: i32 = 1 << 8;
const HAS_ATTR: i32 = 1 << 9;
const HAS_TAG: i32 = 1 << 10;
/// CHARSXP levels: the string's encoding.
const UTF8: i32 = 1 << 3;
const ASCII: i32 = 1 << 6;
const NA_INTEGER: i32 = i32::MIN;

struct Writer {
    out: Vec<u8>,
    /// Symbols written so far; a repeated one is written as a reference to its index.
    symbols: Vec<String>,
}

impl Writer {
    fn int(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn length(&mut self, len: usize) {
        // Vectors here are tiny; R's long-vector form is never needed.
        self.int(i32::try_from(len).unwrap_or(i32::MAX));
    }

    fn chars(&mut self, text: &Option<String>) {
        match text {
            None => {
                self.int(sexp::CHAR);
                self.int(-1);
            }
            Some(text) => {
                let encoding = if text.is_ascii() { ASCII } else { UTF8 };
                self.int(sexp::CHAR | (encoding << 12));
                self.length(text.len());
                self.out.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn symbol(&mut self, name: &str) {
        match self.symbols.iter().position(|s| s == name) {
            Some(index) => self.int(((index as i32 + 1) << 8) | sexp::REF),
            None => {
                self.symbols.push(name.to_owned());
                self.int(sexp::SYM);
                self.chars(&Some(name.to_owned()));
            }
        }
    }

    fn item(&mut self, object: &RObject) {
        let (kind, len) = match &object.value {
            RValue::Null => {
                self.int(sexp::NIL_VALUE);
                return;
            }
            RValue::Logical(v) => (sexp::LGL, v.len()),
            RValue::Integer(v) => (sexp::INT, v.len()),
            RValue::Character(v) => (sexp::STR, v.len()),
            RValue::List(v) => (sexp::VEC, v.len()),
        };
        let mut flags = kind;
        if !object.attributes.is_empty() {
            flags |= HAS_ATTR;
        }
        if object.attributes.iter().any(|(name, _)| name == "class") {
            flags |= IS_OBJECT;
        }
        self.int(flags);
        self.length(len);
        match &object.value {
            RValue::Null => {}
            RValue::Logical(values) => {
                for value in values {
                    self.int(value.map_or(NA_INTEGER, i32::from));
                }
            }
            RValue::Integer(values) => {
                for value in values {
                    self.int(value.unwrap_or(NA_INTEGER));
                }
            }
            RValue::Character(values) => {
                for value in values {
                    self.chars(value);
                }
            }
            RValue::List(values) => {
                for value in values {
                    self.item(value);
                }
            }
        }
        if !object.attributes.is_empty() {
            self.attributes(&object.attributes);
        }
    }

    /// Attributes are a pairlist: one tagged node per attribute, ending in `NULL`.
    fn attributes(&mut self, attributes: &[(String, RObject)]) {
        for (name, value) in attributes {
            self.int(sexp::LIST | HAS_TAG);
            self.symbol(name);
            self.item(value);
        }
        self.int(sexp::NIL_VALUE);
    }
}

/// `serialize(object, NULL, version = 3)`: R's binary serialization, uncompressed.
pub fn serialize(object: &RObject) -> Vec<u8> {
    let mut writer = Writer {
        out: b"X\n".to_vec(),
        symbols: Vec::new(),
    };
    writer.int(FORMAT_VERSION);
    writer.int(WRITER_VERSION);
    writer.int(MIN_READER_VERSION);
    let encoding = "UTF-8";
    writer.length(encoding.len());
    writer.out.extend_from_slice(encoding.as_bytes());
    writer.item(object);
    writer.out
}

/// The bytes of the file `saveRDS(object, file)` writes: [`serialize`], gzip-compressed.
pub fn save_rds(object: &RObject) -> Vec<u8> {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gzip.write_all(&serialize(object));
    gzip.finish().unwrap_or_default()
}

/// The `uuid` of the future whose board id is `future`: future.p2p 0.4.0 writes a
/// future's id as `paste(future$uuid, collapse = "-")`, and no part of a uuid has a `-`.
pub fn uuid_of(future: &str) -> Vec<Option<String>> {
    future
        .split('-')
        .map(|part| Some(part.to_owned()))
        .collect()
}

/// `saveRDS()` of a `FutureResult` whose only condition is a `FutureError` with `message`:
/// what a future.p2p 0.4.0 client reads as its future failing with that error.
pub fn failure_result(future: &str, message: &str) -> Vec<u8> {
    let condition = RObject::named_list(vec![
        ("message", RObject::string(message)),
        ("call", RObject::null()),
    ])
    .with_class(&["FutureError", "simpleError", "error", "condition"]);
    let signalled = RObject::named_list(vec![
        ("condition", condition),
        ("signaled", RObject::plain(RValue::Integer(vec![Some(0)]))),
    ]);
    let result = RObject::named_list(vec![
        ("value", RObject::null()),
        ("visible", RObject::plain(RValue::Logical(vec![Some(true)]))),
        ("stdout", RObject::null()),
        ("conditions", RObject::plain(RValue::List(vec![signalled]))),
        ("rng", RObject::plain(RValue::Logical(vec![Some(false)]))),
        ("uuid", RObject::plain(RValue::Character(uuid_of(future)))),
        ("version", RObject::string("1.8")),
    ])
    .with_class(&["FutureResult"]);
    save_rds(&result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read as _;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What R 4.2.2 printed for
    /// `serialize(structure(list(value = NULL, visible = TRUE, stdout = NULL,
    /// conditions = list(list(condition = structure(list(message = "boom", call = NULL),
    /// class = c("FutureError", "simpleError", "error", "condition")), signaled = 0L)),
    /// rng = FALSE, uuid = c("abc", "1"), version = "1.8"), class = "FutureResult"), NULL,
    /// version = 3)`.
    const R_BYTES: &str = "580a000000030004020200030500000000055554462d380000031300000007000000fe0000000a0000000100000001000000fe00000013000000010000021300000002000003130000000200000010000000010004000900000004626f6f6d000000fe000004020000000100040009000000056e616d6573000000100000000200040009000000076d657373616765000400090000000463616c6c00000402000000010004000900000005636c6173730000001000000004000400090000000b4675747572654572726f72000400090000000b73696d706c654572726f7200040009000000056572726f720004000900000009636f6e646974696f6e000000fe0000000d000000010000000000000402000001ff00000010000000020004000900000009636f6e646974696f6e00040009000000087369676e616c6564000000fe0000000a00000001000000000000001000000002000400090000000361626300040009000000013100000010000000010004000900000003312e3800000402000001ff0000001000000007000400090000000576616c7565000400090000000776697369626c6500040009000000067374646f7574000400090000000a636f6e646974696f6e730004000900000003726e67000400090000000475756964000400090000000776657273696f6e00000402000002ff0000001000000001000400090000000c467574757265526573756c74000000fe";

    #[test]
    fn a_failure_result_is_what_r_writes() {
        let rds = failure_result("abc-1", "boom");
        let mut plain = Vec::new();
        GzDecoder::new(&rds[..])
            .read_to_end(&mut plain)
            .expect("gzip");
        assert_eq!(hex(&plain), R_BYTES);
    }

    #[test]
    fn na_and_non_ascii_strings_are_written_as_r_does() {
        // serialize(list(a = NA, b = NA_character_, "é"), NULL, version = 3) in R 4.2.2.
        let object = RObject::named_list(vec![
            ("a", RObject::plain(RValue::Logical(vec![None]))),
            ("b", RObject::plain(RValue::Character(vec![None]))),
            ("", RObject::string("é")),
        ]);
        assert_eq!(
            hex(&serialize(&object)),
            "580a000000030004020200030500000000055554462d3800000213000000030000000a0000000180000000000000100000000100000009ffffffff00000010000000010000800900000002c3a9000004020000000100040009000000056e616d657300000010000000030004000900000001610004000900000001620004000900000000000000fe"
        );
    }

    #[test]
    fn uuids_come_back_from_board_ids() {
        assert_eq!(
            uuid_of("5ab993dde27a063eaf13377923661938-4"),
            vec![
                Some("5ab993dde27a063eaf13377923661938".to_owned()),
                Some("4".to_owned())
            ]
        );
    }
}
