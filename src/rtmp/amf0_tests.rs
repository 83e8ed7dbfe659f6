use super::*;

fn enc(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn prop(key: &str, value: Value) -> (String, Value) {
    (key.to_owned(), value)
}

/// Decoding then encoding gives back exactly the input.
fn assert_round_trip(bytes: &[u8]) -> Vec<Value> {
    let values = decode_all(bytes).unwrap();
    let mut again = Vec::new();
    encode_all(&values, &mut again);
    assert_eq!(again, bytes);
    values
}

fn every_kind() -> Vec<Value> {
    vec![
        Value::Number(1.5),
        Value::Number(f64::from_bits(0x7FF8_0000_0000_1234)),
        Value::Boolean(true),
        Value::Boolean(false),
        s(""),
        s("héllo"),
        Value::Object(vec![
            prop("z", Value::Number(1.0)),
            prop("a", Value::Null),
            prop("m", Value::Object(vec![])),
        ]),
        Value::Null,
        Value::Undefined,
        Value::Reference(7),
        Value::EcmaArray {
            count: 0,
            props: vec![prop("k", s("v")), prop("k2", Value::Undefined)],
        },
        Value::ecma_array(vec![]),
        Value::StrictArray(vec![
            s("avc1"),
            Value::Number(2.0),
            Value::StrictArray(vec![]),
        ]),
        Value::Date(1.7e12, -60),
        Value::LongString("long".to_owned()),
        Value::Unsupported,
        Value::XmlDocument("<a/>".to_owned()),
        Value::TypedObject("Cls".to_owned(), vec![prop("x", Value::Boolean(true))]),
    ]
}

#[test]
fn known_encodings() {
    assert_eq!(enc(&Value::Number(1.0)), [0, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(enc(&Value::Boolean(true)), [1, 1]);
    assert_eq!(enc(&s("ab")), [2, 0, 2, b'a', b'b']);
    assert_eq!(
        enc(&Value::Object(vec![prop("a", Value::Null)])),
        [3, 0, 1, b'a', 5, 0, 0, 9]
    );
    assert_eq!(
        enc(&Value::EcmaArray {
            count: 9,
            props: vec![]
        }),
        [8, 0, 0, 0, 9, 0, 0, 9]
    );
    assert_eq!(
        enc(&Value::StrictArray(vec![Value::Null])),
        [0x0A, 0, 0, 0, 1, 5]
    );
    assert_eq!(enc(&Value::Reference(258)), [7, 1, 2]);
    assert_eq!(enc(&Value::Date(0.0, 1))[9..], [0, 1]);
}

#[test]
fn every_kind_round_trips() {
    let values = every_kind();
    let mut bytes = Vec::new();
    encode_all(&values, &mut bytes);
    let decoded = assert_round_trip(&bytes);
    assert_eq!(decoded.len(), values.len());
    // NaN is not equal to itself; compare the rest structurally.
    assert_eq!(decoded[0], values[0]);
    assert_eq!(decoded[2..], values[2..]);
    match decoded[1] {
        Value::Number(n) => assert_eq!(n.to_bits(), 0x7FF8_0000_0000_1234),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn ecma_array_count_is_kept_as_read() {
    // ffmpeg's onMetaData writes a count that need not match.
    let bytes = [8, 0, 0, 0, 5, 0, 1, b'a', 5, 0, 0, 9];
    let values = assert_round_trip(&bytes);
    assert_eq!(
        values,
        [Value::EcmaArray {
            count: 5,
            props: vec![prop("a", Value::Null)]
        }]
    );
}

#[test]
fn long_strings_stay_long_and_big_strings_become_long() {
    assert_round_trip(&[0x0C, 0, 0, 0, 1, b'x']);
    let big = "x".repeat(70_000);
    let bytes = enc(&Value::String(big.clone()));
    assert_eq!(bytes[0], 0x0C);
    assert_eq!(decode_all(&bytes).unwrap(), [Value::LongString(big)]);
}

#[test]
fn property_order_kept() {
    let obj = Value::Object(vec![
        prop("b", s("1")),
        prop("a", s("2")),
        prop("b2", s("3")),
    ]);
    let decoded = decode_all(&enc(&obj)).unwrap();
    assert_eq!(decoded, [obj]);
}

#[test]
fn truncation_is_an_error_at_every_cut() {
    let mut bytes = Vec::new();
    encode_all(&every_kind(), &mut bytes);
    let full = decode_all(&bytes).unwrap().len();
    for cut in 0..bytes.len() {
        // A cut between top-level values is a shorter valid sequence.
        if let Ok(values) = decode_all(&bytes[..cut]) {
            assert!(values.len() < full);
        }
    }
    assert_eq!(decode_all(&[0, 1, 2]), Err(Amf0Error::Truncated(1)));
    assert_eq!(decode_all(&[2, 0, 5, b'a']), Err(Amf0Error::Truncated(3)));
    assert_eq!(
        decode_all(&[3, 0, 1, b'a', 5]),
        Err(Amf0Error::Truncated(5))
    );
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    // 4 GiB long string, and a 4-billion-element array with no elements.
    assert_eq!(
        decode_all(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']),
        Err(Amf0Error::Truncated(5))
    );
    assert_eq!(
        decode_all(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 5, 5]),
        Err(Amf0Error::Truncated(7))
    );
}

#[test]
fn refuses_what_would_not_round_trip() {
    assert_eq!(
        decode_all(&[1, 2]),
        Err(Amf0Error::InvalidBoolean { byte: 2, at: 1 })
    );
    assert_eq!(decode_all(&[2, 0, 1, 0xFF]), Err(Amf0Error::InvalidUtf8(3)));
    assert_eq!(
        decode_all(&[3, 0, 1, 0xC3, 5, 0, 0, 9]),
        Err(Amf0Error::InvalidUtf8(3))
    );
}

#[test]
fn refuses_bad_markers_and_structure() {
    assert_eq!(
        decode_all(&[0x04]),
        Err(Amf0Error::ReservedMarker { marker: 4, at: 0 })
    );
    assert_eq!(
        decode_all(&[0x0E]),
        Err(Amf0Error::ReservedMarker {
            marker: 0x0E,
            at: 0
        })
    );
    assert_eq!(
        decode_all(&[0x12]),
        Err(Amf0Error::UnknownMarker {
            marker: 0x12,
            at: 0
        })
    );
    assert_eq!(
        decode_all(&[5, 0x11, 2]),
        Err(Amf0Error::Amf3Unsupported(1))
    );
    assert_eq!(decode_all(&[9]), Err(Amf0Error::UnexpectedObjectEnd(0)));
    assert_eq!(
        decode_all(&[3, 0, 1, b'a', 9]),
        Err(Amf0Error::UnexpectedObjectEnd(4))
    );
    // An empty name followed by a value instead of the end marker.
    assert_eq!(
        decode_all(&[3, 0, 0, 5, 0, 0, 9]),
        Err(Amf0Error::EmptyKey(1))
    );
}

fn nested(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..depth {
        bytes.extend([0x0A, 0, 0, 0, 1]);
    }
    bytes.push(5);
    bytes
}

#[test]
fn nesting_is_capped() {
    assert_round_trip(&nested(MAX_DEPTH));
    assert_eq!(
        decode_all(&nested(MAX_DEPTH + 1)),
        Err(Amf0Error::TooDeep(5 * MAX_DEPTH))
    );
    // Deep garbage fails fast instead of overflowing the stack.
    assert!(matches!(
        decode_all(&[3, 0, 1, b'a'].repeat(100_000)),
        Err(Amf0Error::TooDeep(_))
    ));
}

#[test]
fn helpers() {
    let props = vec![prop("app", s("live")), prop("n", Value::Number(3.0))];
    assert_eq!(
        property(&props, "app").and_then(Value::as_str),
        Some("live")
    );
    assert_eq!(property(&props, "n").and_then(Value::as_f64), Some(3.0));
    assert_eq!(property(&props, "x"), None);
    assert_eq!(Value::LongString("l".into()).as_str(), Some("l"));
    assert_eq!(
        Value::ecma_array(vec![prop("a", Value::Null)]),
        Value::EcmaArray {
            count: 1,
            props: vec![prop("a", Value::Null)]
        }
    );
}

#[test]
fn garbage_never_panics_and_round_trips_when_accepted() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut valid = Vec::new();
    encode_all(&every_kind(), &mut valid);
    for round in 0..5000 {
        let mut input: Vec<u8> = if round % 2 == 0 {
            valid.clone()
        } else {
            // Small bytes hit real markers often.
            (0..next() % 64).map(|_| (next() % 20) as u8).collect()
        };
        for _ in 0..(next() % 4) {
            if !input.is_empty() {
                let at = (next() as usize) % input.len();
                input[at] = next() as u8;
            }
        }
        if let Ok(values) = decode_all(&input) {
            let mut again = Vec::new();
            encode_all(&values, &mut again);
            assert_eq!(again, input);
        }
    }
}
