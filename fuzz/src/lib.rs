//! Checks shared by the fuzz targets in `fuzz_targets/`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// How many float-rounding differences a run prints before it only counts them.
const FLOAT_REPORTS: usize = 3;

/// Decodes `json` as `T`; when it decodes, checks that encode → decode gives
/// the same value and returns it.
///
/// One difference is tolerated, and printed (the first few times) instead of
/// failing: a number whose decimal text has more significant digits than an
/// `f64` holds, or a shortest-form float with a large exponent (such as
/// `6.941548256537246e-16`), may decode one or two ulps away from the nearest
/// `f64`, because serde_json's default float parser is not correctly rounded
/// (its `float_roundtrip` feature is); the drift can repeat on every round
/// trip. Any other difference panics.
pub fn round_trip<T>(json: &str) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let value = serde_json::from_str::<T>(json).ok()?;
    let encoded = encode(&value, json);
    let again: T = decode(&encoded, json);
    if again != value {
        let same_but_rounding = same_up_to_float_rounding(&tree(&value), &tree(&again));
        assert!(
            same_but_rounding,
            "decode(encode(x)) != x for {json:?} via {encoded:?}:\n{value:?}\n{again:?}"
        );
        report_float_rounding(json, &encoded);
        // The drift may go on with every round trip, but only by rounding.
        let later: T = decode(&encode(&again, json), json);
        assert!(
            same_up_to_float_rounding(&tree(&again), &tree(&later)),
            "a second round trip changed {json:?} by more than float rounding"
        );
    }
    Some(value)
}

fn encode<T: Serialize + Debug>(value: &T, json: &str) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| panic!("{value:?} (from {json:?}) does not encode: {e}"))
}

fn decode<T: DeserializeOwned>(encoded: &str, json: &str) -> T {
    serde_json::from_str(encoded)
        .unwrap_or_else(|e| panic!("{encoded:?} (from {json:?}) does not decode: {e}"))
}

fn tree<T: Serialize + Debug>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("{value:?} has no JSON tree: {e}"))
}

fn report_float_rounding(json: &str, encoded: &str) {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let seen = SEEN.fetch_add(1, Ordering::Relaxed);
    if seen < FLOAT_REPORTS {
        eprintln!("FLOAT-ROUNDING #{seen}: {json:?} re-decodes differently via {encoded:?}");
    }
}

/// Whether two JSON trees are equal except for floats at most 2 ulps apart.
pub fn same_up_to_float_rounding(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) if x.is_sign_negative() == y.is_sign_negative() => {
                    x.to_bits().abs_diff(y.to_bits()) <= 2
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(x, y)| same_up_to_float_rounding(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_up_to_float_rounding(x, y)))
        }
        _ => a == b,
    }
}
