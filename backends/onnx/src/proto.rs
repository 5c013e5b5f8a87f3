//! The ONNX protobuf messages nnlens reads, written out by hand with `prost`'s derive (field
//! numbers from `onnx/onnx.proto`), so that no build step needs `protoc`.
//!
//! Only the fields nnlens uses are declared; protobuf decoding skips the others (doc strings,
//! metadata, training information, functions, sparse tensors), so any valid ONNX file decodes.
//! Re-encoding a decoded model drops those fields: encode only models built here (test
//! fixtures).

/// ONNX element types (`TensorProto.DataType`), as the `i32` the messages carry.
pub mod elem {
    /// 32-bit float.
    pub const FLOAT: i32 = 1;
    /// Unsigned 8-bit integer.
    pub const UINT8: i32 = 2;
    /// Signed 8-bit integer.
    pub const INT8: i32 = 3;
    /// Unsigned 16-bit integer.
    pub const UINT16: i32 = 4;
    /// Signed 16-bit integer.
    pub const INT16: i32 = 5;
    /// Signed 32-bit integer.
    pub const INT32: i32 = 6;
    /// Signed 64-bit integer.
    pub const INT64: i32 = 7;
    /// String.
    pub const STRING: i32 = 8;
    /// Boolean.
    pub const BOOL: i32 = 9;
    /// IEEE 16-bit float.
    pub const FLOAT16: i32 = 10;
    /// 64-bit float.
    pub const DOUBLE: i32 = 11;
    /// Unsigned 32-bit integer.
    pub const UINT32: i32 = 12;
    /// Unsigned 64-bit integer.
    pub const UINT64: i32 = 13;
    /// bfloat16.
    pub const BFLOAT16: i32 = 16;

    /// The ONNX name of an element type (`FLOAT`, `INT64`, ...), for messages.
    pub fn name(t: i32) -> String {
        let known = match t {
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
            BFLOAT16 => "BFLOAT16",
            _ => return format!("element type {t}"),
        };
        known.to_string()
    }

    /// Whether the type is a floating-point type.
    pub fn is_float(t: i32) -> bool {
        matches!(t, FLOAT | DOUBLE | FLOAT16 | BFLOAT16)
    }
}

/// `AttributeProto.AttributeType`, as the `i32` the messages carry.
pub mod attribute_type {
    /// A float (`f`).
    pub const FLOAT: i32 = 1;
    /// An integer (`i`).
    pub const INT: i32 = 2;
    /// Bytes (`s`).
    pub const STRING: i32 = 3;
    /// A tensor (`t`).
    pub const TENSOR: i32 = 4;
    /// A graph (`g`).
    pub const GRAPH: i32 = 5;
    /// Floats (`floats`).
    pub const FLOATS: i32 = 6;
    /// Integers (`ints`).
    pub const INTS: i32 = 7;
    /// Byte strings (`strings`).
    pub const STRINGS: i32 = 8;
}

/// A whole ONNX file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The IR version of the file format.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// The operator sets the graph uses.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// The exporter's name.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// The exporter's version.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// The model's domain.
    #[prost(string, tag = "4")]
    pub domain: String,
    /// The model's version.
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// An operator set a model imports.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// The domain (`""` or `ai.onnx` for the default one, `ai.onnx.ml`, ...).
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The opset version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// A computation graph.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The nodes, in a topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The graph's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights), addressed by name.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// The graph inputs (older files list the initializers here too).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types and shapes of intermediate tensors, where the exporter gave them.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// One operator call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input tensor names (`""` for an omitted optional input).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output tensor names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator (`Conv`, `Relu`, ...).
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The operator's domain (`""` for the default one).
    #[prost(string, tag = "7")]
    pub domain: String,
    /// The operator's attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// A named attribute of a node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Which of the value fields is set ([`attribute_type`]).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    /// A float value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// An integer value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// A string value.
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// A tensor value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// A graph value (control flow).
    #[prost(message, optional, tag = "6")]
    pub g: Option<GraphProto>,
    /// Float values.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// Integer values.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// String values.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// Tensor values.
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    /// Graph values.
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
}

/// A tensor: dimensions, element type and values (in one of several fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// The dimensions.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// The element type ([`elem`]).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Values of FLOAT (and COMPLEX64) tensors.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Values of INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16 and BFLOAT16 tensors.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// Values of STRING tensors.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    /// Values of INT64 tensors.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// The tensor's name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Values of any numeric type as little-endian bytes (exporters' usual choice).
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// Values of DOUBLE (and COMPLEX128) tensors.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// Values of UINT32 and UINT64 tensors.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    /// Where the values are when they live in an external file: the keys `location` (the
    /// file, relative to the model's directory), `offset` and `length` (bytes), `checksum`.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// Where the values live: 0 in this message, 1 in an external file.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// A key and a value (external-data locations, metadata).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// The name and type of a graph input, output or intermediate tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// The tensor's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// The type of a value; nnlens reads tensor types only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The type (other kinds decode as `None`).
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
}

/// The nested types of [`TypeProto`].
pub mod type_proto {
    /// A tensor type: element type and shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// The element type ([`super::elem`]).
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// The shape, where declared.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }

    /// The kinds of type nnlens reads.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A tensor.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }
}

/// A tensor shape: one entry per axis.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The axes.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// The nested types of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One axis: a size, a symbol, or nothing (unknown).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// The size or symbol.
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
    }

    /// The nested types of [`Dimension`].
    pub mod dimension {
        /// A concrete size or a symbolic name.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A concrete size.
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// A symbolic size (`N`, `batch`, ...).
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

impl AttributeProto {
    /// An integer attribute.
    pub fn int(name: &str, value: i64) -> Self {
        Self { name: name.into(), r#type: attribute_type::INT, i: value, ..Default::default() }
    }

    /// An integer-list attribute.
    pub fn ints(name: &str, values: &[i64]) -> Self {
        Self {
            name: name.into(),
            r#type: attribute_type::INTS,
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    /// A float attribute.
    pub fn float(name: &str, value: f32) -> Self {
        Self { name: name.into(), r#type: attribute_type::FLOAT, f: value, ..Default::default() }
    }

    /// A float-list attribute.
    pub fn floats(name: &str, values: &[f32]) -> Self {
        Self {
            name: name.into(),
            r#type: attribute_type::FLOATS,
            floats: values.to_vec(),
            ..Default::default()
        }
    }

    /// A string attribute.
    pub fn string(name: &str, value: &str) -> Self {
        Self {
            name: name.into(),
            r#type: attribute_type::STRING,
            s: value.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// A tensor attribute.
    pub fn tensor(name: &str, value: TensorProto) -> Self {
        Self {
            name: name.into(),
            r#type: attribute_type::TENSOR,
            t: Some(value),
            ..Default::default()
        }
    }
}

impl NodeProto {
    /// A node of the default domain.
    pub fn new(
        op_type: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> Self {
        Self {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            op_type: op_type.into(),
            domain: String::new(),
            attribute,
        }
    }

    /// The attribute called `name`, if the node has it.
    pub fn attribute(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }
}

impl TensorProto {
    /// A FLOAT tensor with its values in `float_data`.
    pub fn from_f32(name: &str, dims: &[i64], values: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: elem::FLOAT,
            float_data: values,
            ..Default::default()
        }
    }

    /// A DOUBLE tensor with its values in `double_data`.
    pub fn from_f64(name: &str, dims: &[i64], values: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: elem::DOUBLE,
            double_data: values,
            ..Default::default()
        }
    }

    /// An INT64 tensor with its values in `int64_data`.
    pub fn from_i64(name: &str, dims: &[i64], values: Vec<i64>) -> Self {
        Self {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: elem::INT64,
            int64_data: values,
            ..Default::default()
        }
    }
}

impl ValueInfoProto {
    /// A tensor value: element type and dimensions (`None` for a symbolic axis, named `N`).
    pub fn tensor(name: &str, elem_type: i32, dims: &[Option<i64>]) -> Self {
        use tensor_shape_proto::{Dimension, dimension::Value};
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(v) => Value::DimValue(*v),
                    None => Value::DimParam("N".into()),
                }),
            })
            .collect();
        Self {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type,
                    shape: Some(TensorShapeProto { dim }),
                })),
            }),
        }
    }
}

impl ModelProto {
    /// A model of `graph` importing the default opset `opset` (IR version 8).
    pub fn new(graph: GraphProto, opset: i64) -> Self {
        Self {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
            graph: Some(graph),
            ..Default::default()
        }
    }

    /// The version of the default opset (`""` or `ai.onnx`) the model imports, if it does.
    pub fn default_opset(&self) -> Option<i64> {
        self.opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
    }
}
