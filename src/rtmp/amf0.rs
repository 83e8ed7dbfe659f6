//! AMF0, the value encoding of RTMP commands.
//!
//! Owns decoding untrusted AMF0 bytes into [`Value`]s and encoding them
//! back. Everything [`decode_all`] accepts, [`encode`] writes back byte for
//! byte: property order, the ECMA array count as it was read (clients are
//! sloppy with it), number bit patterns, the date time zone, and the choice
//! between short and long string. To keep that promise the decoder refuses
//! the few encodings with two spellings of one value: booleans other than
//! 0 and 1, and strings that are not UTF-8.
//!
//! Untrusted length fields never size an allocation: strings are sliced
//! from input that is already there, and arrays grow one decoded element at
//! a time. Nesting is capped at [`MAX_DEPTH`]. AMF3 (the AVM+ switch
//! marker) is not supported.

/// Deepest nesting of objects and arrays that [`decode_all`] accepts.
pub const MAX_DEPTH: usize = 32;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const MOVIE_CLIP: u8 = 0x04;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const RECORD_SET: u8 = 0x0E;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS: u8 = 0x11;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// IEEE 754 double.
    Number(f64),
    /// Boolean.
    Boolean(bool),
    /// UTF-8 string; written as a long string when over 65535 bytes.
    String(String),
    /// Anonymous object: properties in wire order.
    Object(Vec<(String, Value)>),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// Index of an earlier complex value in the same message.
    Reference(u16),
    /// Associative array: properties in wire order.
    EcmaArray {
        /// The count field as read; it need not match `props.len()`.
        count: u32,
        /// Properties in wire order.
        props: Vec<(String, Value)>,
    },
    /// Dense array.
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch and a time zone offset (reserved,
    /// normally 0).
    Date(f64, i16),
    /// String with a 32-bit length.
    LongString(String),
    /// The "unsupported" marker.
    Unsupported,
    /// XML document, as a long string.
    XmlDocument(String),
    /// Object of a registered class: class name and properties.
    TypedObject(String, Vec<(String, Value)>),
}

impl Value {
    /// An ECMA array whose count field is its length.
    pub fn ecma_array(props: Vec<(String, Value)>) -> Self {
        let count = u32::try_from(props.len()).unwrap_or(u32::MAX);
        Self::EcmaArray { count, props }
    }

    /// The text of a string or long string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) | Self::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// The first property named `key`.
pub fn property<'a>(props: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Why AMF0 input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 input ends inside a value at byte {0}")]
    Truncated(usize),
    /// A type marker that AMF0 does not define.
    #[error("unknown AMF0 type marker {marker:#04x} at byte {at}")]
    UnknownMarker {
        /// The marker.
        marker: u8,
        /// Its offset.
        at: usize,
    },
    /// A marker AMF0 reserves and never defined (movie clip, record set).
    #[error("reserved AMF0 type marker {marker:#04x} at byte {at}")]
    ReservedMarker {
        /// The marker.
        marker: u8,
        /// Its offset.
        at: usize,
    },
    /// The AVM+ marker: the rest is AMF3, which is not supported.
    #[error("AMF3 values (AVM+ marker at byte {0}) are not supported")]
    Amf3Unsupported(usize),
    /// A string or key that is not UTF-8.
    #[error("AMF0 string at byte {0} is not UTF-8")]
    InvalidUtf8(usize),
    /// A boolean byte other than 0 or 1: would not re-encode identically.
    #[error("AMF0 boolean at byte {at} is {byte}, not 0 or 1")]
    InvalidBoolean {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// Objects and arrays nested deeper than [`MAX_DEPTH`].
    #[error("AMF0 values nested deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    /// An object-end marker where a value was expected.
    #[error("AMF0 object end marker outside an object at byte {0}")]
    UnexpectedObjectEnd(usize),
    /// An empty property name not followed by the object-end marker.
    #[error("AMF0 empty property name without object end at byte {0}")]
    EmptyKey(usize),
}

/// Decodes a sequence of values filling all of `input`.
pub fn decode_all(input: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut reader = Reader { input, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < input.len() {
        values.push(reader.value(0)?);
    }
    Ok(values)
}

/// Decodes the first `max` values of `input` (fewer if it ends first) and
/// ignores what follows, as servers read a command's leading arguments.
pub fn decode_leading(input: &[u8], max: usize) -> Result<Vec<Value>, Amf0Error> {
    let mut reader = Reader { input, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < input.len() && values.len() < max {
        values.push(reader.value(0)?);
    }
    Ok(values)
}

/// Cursor over untrusted input; every read is bounds-checked.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or(Amf0Error::Truncated(self.pos))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Amf0Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn text(&mut self, len: usize) -> Result<String, Amf0Error> {
        let at = self.pos;
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| Amf0Error::InvalidUtf8(at))?;
        Ok(text.to_owned())
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()?;
        self.text(usize::from(len))
    }

    fn long_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u32()?;
        // On 16-bit targets a length that does not fit is simply truncated
        // input.
        let len = usize::try_from(len).map_err(|_| Amf0Error::Truncated(self.pos))?;
        self.text(len)
    }

    /// One value; `depth` counts the containers around it.
    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        let at = self.pos;
        let marker = self.u8()?;
        let container = matches!(marker, OBJECT | ECMA_ARRAY | STRICT_ARRAY | TYPED_OBJECT);
        if container && depth >= MAX_DEPTH {
            return Err(Amf0Error::TooDeep(at));
        }
        Ok(match marker {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => match self.u8()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                byte => return Err(Amf0Error::InvalidBoolean { byte, at: at + 1 }),
            },
            STRING => Value::String(self.short_string()?),
            OBJECT => Value::Object(self.properties(depth + 1)?),
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            REFERENCE => Value::Reference(self.u16()?),
            ECMA_ARRAY => {
                let count = self.u32()?;
                let props = self.properties(depth + 1)?;
                Value::EcmaArray { count, props }
            }
            STRICT_ARRAY => {
                let count = self.u32()?;
                // Each element takes at least one byte, so the input's
                // length bounds this loop and the vector, not `count`.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            DATE => {
                let millis = self.f64()?;
                Value::Date(millis, i16::from_be_bytes(self.array()?))
            }
            LONG_STRING => Value::LongString(self.long_string()?),
            UNSUPPORTED => Value::Unsupported,
            XML_DOCUMENT => Value::XmlDocument(self.long_string()?),
            TYPED_OBJECT => {
                let class = self.short_string()?;
                Value::TypedObject(class, self.properties(depth + 1)?)
            }
            OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd(at)),
            MOVIE_CLIP | RECORD_SET => return Err(Amf0Error::ReservedMarker { marker, at }),
            AVMPLUS => return Err(Amf0Error::Amf3Unsupported(at)),
            _ => return Err(Amf0Error::UnknownMarker { marker, at }),
        })
    }

    /// Properties up to and including the empty key and object-end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let at = self.pos;
            let key = self.short_string()?;
            if key.is_empty() {
                // Some decoders would read a property named "" here; refuse
                // rather than see a different object than the server does.
                if self.u8()? == OBJECT_END {
                    return Ok(props);
                }
                return Err(Amf0Error::EmptyKey(at));
            }
            let value = self.value(depth)?;
            props.push((key, value));
        }
    }
}

/// Appends the encoding of `value` to `out`.
///
/// # Panics
///
/// If a property name or typed-object class name is longer than 65535
/// bytes, or a long string longer than 4 GiB. Decoded values never are;
/// nor do they have empty property names, which would read back as the end
/// of the object.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Value::String(s) if s.len() > usize::from(u16::MAX) => {
            out.push(LONG_STRING);
            put_long_string(s, out);
        }
        Value::String(s) => {
            out.push(STRING);
            put_short_string(s, out);
        }
        Value::Object(props) => {
            out.push(OBJECT);
            put_properties(props, out);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::Reference(index) => {
            out.push(REFERENCE);
            out.extend_from_slice(&index.to_be_bytes());
        }
        Value::EcmaArray { count, props } => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&count.to_be_bytes());
            put_properties(props, out);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            let count = u32::try_from(items.len()).expect("strict array under 2^32 elements");
            out.extend_from_slice(&count.to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Value::Date(millis, zone) => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&zone.to_be_bytes());
        }
        Value::LongString(s) => {
            out.push(LONG_STRING);
            put_long_string(s, out);
        }
        Value::Unsupported => out.push(UNSUPPORTED),
        Value::XmlDocument(s) => {
            out.push(XML_DOCUMENT);
            put_long_string(s, out);
        }
        Value::TypedObject(class, props) => {
            out.push(TYPED_OBJECT);
            put_short_string(class, out);
            put_properties(props, out);
        }
    }
}

/// Appends the encodings of `values`, one after another.
pub fn encode_all(values: &[Value], out: &mut Vec<u8>) {
    for value in values {
        encode(value, out);
    }
}

fn put_short_string(s: &str, out: &mut Vec<u8>) {
    let len = u16::try_from(s.len()).expect("AMF0 name under 65536 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_long_string(s: &str, out: &mut Vec<u8>) {
    let len = u32::try_from(s.len()).expect("AMF0 long string under 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_properties(props: &[(String, Value)], out: &mut Vec<u8>) {
    for (key, value) in props {
        put_short_string(key, out);
        encode(value, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

#[cfg(test)]
#[path = "amf0_tests.rs"]
mod tests;
