//! serde for floats that may be `NaN` or infinite (JSON has neither): finite values are numbers,
//! `NaN` is `null`, the infinities are the strings `"inf"` and `"-inf"`. Arrays are
//! `{"shape": [...], "data": [...]}` with the data in row-major order.

use std::fmt;

use ndarray::{Array, Dimension, IxDyn};
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A float that serialises as described in the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flex(pub f64);

impl Serialize for Flex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_finite() {
            s.serialize_f64(x)
        } else if x.is_nan() {
            s.serialize_none()
        } else if x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

struct FlexVisitor;

impl<'de> Visitor<'de> for FlexVisitor {
    type Value = Flex;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, null (NaN), \"inf\", \"-inf\" or \"nan\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Flex, E> {
        Ok(Flex(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flex, E> {
        Ok(Flex(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flex, E> {
        Ok(Flex(v as f64))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Flex, E> {
        Ok(Flex(f64::NAN))
    }

    fn visit_none<E: de::Error>(self) -> Result<Flex, E> {
        Ok(Flex(f64::NAN))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Flex, D::Error> {
        d.deserialize_any(FlexVisitor)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Flex, E> {
        match v {
            "inf" | "+inf" | "Infinity" => Ok(Flex(f64::INFINITY)),
            "-inf" | "-Infinity" => Ok(Flex(f64::NEG_INFINITY)),
            "nan" | "NaN" => Ok(Flex(f64::NAN)),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Flex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FlexVisitor)
    }
}

/// `#[serde(with = "scalar")]` for an `f64` field.
pub mod scalar {
    use super::*;

    /// Serialises one float.
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        Flex(*x).serialize(s)
    }

    /// Deserialises one float.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Flex::deserialize(d).map(|f| f.0)
    }
}

#[derive(Serialize, Deserialize)]
struct Repr<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

fn from_repr<T, D: Dimension, E: de::Error>(
    shape: Vec<usize>,
    data: Vec<T>,
) -> Result<Array<T, D>, E> {
    Array::from_shape_vec(IxDyn(&shape), data)
        .map_err(|e| E::custom(format!("array data does not fit its shape: {e}")))?
        .into_dimensionality::<D>()
        .map_err(|e| E::custom(format!("array of the wrong dimension: {e}")))
}

/// `#[serde(with = "array")]` for an `Array<f64, D>` that may hold `NaN` or infinities.
pub mod array {
    use super::*;

    /// Serialises the array as `{"shape", "data"}`.
    pub fn serialize<S: Serializer, D: Dimension>(
        a: &Array<f64, D>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        Repr { shape: a.shape().to_vec(), data: a.iter().map(|&x| Flex(x)).collect() }.serialize(s)
    }

    /// Deserialises an array written by [`serialize`].
    pub fn deserialize<'de, De: Deserializer<'de>, D: Dimension>(
        d: De,
    ) -> Result<Array<f64, D>, De::Error> {
        let r = Repr::<Flex>::deserialize(d)?;
        from_repr(r.shape, r.data.into_iter().map(|f| f.0).collect())
    }
}

/// `#[serde(with = "plain_array")]` for an array of any serialisable element.
pub mod plain_array {
    use super::*;

    /// Serialises the array as `{"shape", "data"}`.
    pub fn serialize<S: Serializer, T: Serialize + Clone, D: Dimension>(
        a: &Array<T, D>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        Repr { shape: a.shape().to_vec(), data: a.iter().cloned().collect() }.serialize(s)
    }

    /// Deserialises an array written by [`serialize`].
    pub fn deserialize<'de, De: Deserializer<'de>, T: DeserializeOwned, D: Dimension>(
        d: De,
    ) -> Result<Array<T, D>, De::Error> {
        let r = Repr::<T>::deserialize(d)?;
        from_repr(r.shape, r.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "array")]
        a: Array2<f64>,
        #[serde(with = "scalar")]
        x: f64,
    }

    #[test]
    fn non_finite_values_round_trip() {
        let h =
            Holder { a: array![[1.5, f64::NAN], [f64::INFINITY, f64::NEG_INFINITY]], x: f64::NAN };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"a":{"shape":[2,2],"data":[1.5,null,"inf","-inf"]},"x":null}"#);
        let back: Holder = serde_json::from_str(&json).unwrap();
        assert_eq!(back.a[[0, 0]], 1.5);
        assert!(back.a[[0, 1]].is_nan() && back.x.is_nan());
        assert_eq!(back.a[[1, 0]], f64::INFINITY);
        assert_eq!(back.a[[1, 1]], f64::NEG_INFINITY);
        let bad = r#"{"a":{"shape":[3,2],"data":[1,2]},"x":1}"#;
        assert!(serde_json::from_str::<Holder>(bad).is_err());
    }
}
