//! Reading the layer structure of an ONNX graph: the rules shared by every nnlens ONNX backend
//! live in `nnlens-onnx` (so that tract and candle name layers identically), and so do the
//! rewrites of the operators tract lacks (so that both see one graph). tract decodes the model,
//! once; this module copies what `nnlens-onnx`'s messages hold out of tract's, and applies
//! `nnlens-onnx`'s rewrites to both.

use prost::Message;
use tract_onnx::pb;

use nnlens_onnx::proto as ours;

/// What `nnlens-onnx`'s messages hold of tract's decoded model: every field they declare,
/// copied, so the same as decoding tract's message re-encoded would give, without decoding the
/// model a second time. The struct literals name every field, so a field added to
/// `nnlens-onnx`'s messages does not build until it is copied here too.
pub(crate) fn to_ours(m: &pb::ModelProto) -> ours::ModelProto {
    ours::ModelProto {
        ir_version: m.ir_version,
        opset_import: m
            .opset_import
            .iter()
            .map(|o| ours::OperatorSetIdProto { domain: o.domain.clone(), version: o.version })
            .collect(),
        producer_name: m.producer_name.clone(),
        producer_version: m.producer_version.clone(),
        domain: m.domain.clone(),
        model_version: m.model_version,
        graph: m.graph.as_ref().map(graph),
    }
}

fn graph(g: &pb::GraphProto) -> ours::GraphProto {
    ours::GraphProto {
        node: g.node.iter().map(node).collect(),
        name: g.name.clone(),
        initializer: g.initializer.iter().map(tensor).collect(),
        input: g.input.iter().map(value_info).collect(),
        output: g.output.iter().map(value_info).collect(),
        value_info: g.value_info.iter().map(value_info).collect(),
    }
}

fn node(n: &pb::NodeProto) -> ours::NodeProto {
    ours::NodeProto {
        input: n.input.clone(),
        output: n.output.clone(),
        name: n.name.clone(),
        op_type: n.op_type.clone(),
        domain: n.domain.clone(),
        attribute: n.attribute.iter().map(attribute).collect(),
    }
}

fn attribute(a: &pb::AttributeProto) -> ours::AttributeProto {
    ours::AttributeProto {
        name: a.name.clone(),
        r#type: a.r#type,
        f: a.f,
        i: a.i,
        s: a.s.clone(),
        t: a.t.as_ref().map(tensor),
        g: a.g.as_ref().map(graph),
        floats: a.floats.clone(),
        ints: a.ints.clone(),
        strings: a.strings.clone(),
        tensors: a.tensors.iter().map(tensor).collect(),
        graphs: a.graphs.iter().map(graph).collect(),
    }
}

fn tensor(t: &pb::TensorProto) -> ours::TensorProto {
    ours::TensorProto {
        dims: t.dims.clone(),
        data_type: t.data_type,
        float_data: t.float_data.clone(),
        int32_data: t.int32_data.clone(),
        string_data: t.string_data.clone(),
        int64_data: t.int64_data.clone(),
        name: t.name.clone(),
        raw_data: t.raw_data.clone(),
        double_data: t.double_data.clone(),
        uint64_data: t.uint64_data.clone(),
        external_data: t
            .external_data
            .iter()
            .map(|e| ours::StringStringEntryProto { key: e.key.clone(), value: e.value.clone() })
            .collect(),
        // An optional field of tract's (absent: 0, in the message).
        data_location: t.data_location.unwrap_or_default(),
    }
}

fn value_info(v: &pb::ValueInfoProto) -> ours::ValueInfoProto {
    ours::ValueInfoProto { name: v.name.clone(), r#type: v.r#type.as_ref().map(type_proto) }
}

fn type_proto(t: &pb::TypeProto) -> ours::TypeProto {
    use ours::type_proto::{Tensor, Value};
    ours::TypeProto {
        value: t.value.as_ref().map(|v| match v {
            pb::type_proto::Value::TensorType(t) => Value::TensorType(Tensor {
                elem_type: t.elem_type,
                shape: t
                    .shape
                    .as_ref()
                    .map(|s| ours::TensorShapeProto { dim: s.dim.iter().map(dimension).collect() }),
            }),
        }),
    }
}

fn dimension(d: &pb::tensor_shape_proto::Dimension) -> ours::tensor_shape_proto::Dimension {
    use ours::tensor_shape_proto::dimension::Value;
    ours::tensor_shape_proto::Dimension {
        value: d.value.as_ref().map(|v| match v {
            pb::tensor_shape_proto::dimension::Value::DimValue(x) => Value::DimValue(*x),
            pb::tensor_shape_proto::dimension::Value::DimParam(p) => Value::DimParam(p.clone()),
        }),
    }
}

/// One of the few messages a rewrite adds, in tract's messages: through its bytes (the fields
/// of `nnlens-onnx`'s messages are ONNX's, so tract's read them as they are).
fn to_tract<M: Message + Default>(message: impl Message) -> Result<M, String> {
    M::decode(&*message.encode_to_vec())
        .map_err(|e| format!("cannot hand a rewritten node to tract ({e})"))
}

/// Lowers the operators tract lacks with `nnlens_onnx`'s rewrites, in tract's message and in
/// its copy in `nnlens-onnx`'s ([`to_ours`]) alike; returns the nodes rewritten.
///
/// # Errors
/// A message naming the node when a node to rewrite is malformed (see
/// `nnlens_onnx::lowerings`); neither model is then changed.
pub(crate) fn lower_unsupported(
    theirs: &mut pb::ModelProto,
    ours: &mut ours::ModelProto,
) -> Result<Vec<String>, String> {
    let (Some(theirs), Some(ours)) = (theirs.graph.as_mut(), ours.graph.as_mut()) else {
        return Ok(Vec::new());
    };
    let lowered = nnlens_onnx::lowerings(ours)?;
    let for_tract = lowered
        .iter()
        .map(|l| l.clone().try_map(to_tract::<pb::NodeProto>, to_tract::<pb::TensorProto>))
        .collect::<Result<Vec<_>, _>>()?;
    nnlens_onnx::apply_lowerings(&mut theirs.node, &mut theirs.initializer, for_tract);
    Ok(nnlens_onnx::apply_lowerings(&mut ours.node, &mut ours.initializer, lowered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnlens_onnx::fixture::fixture_bytes;

    /// What the layer rules read before tract's model was decoded once: its message
    /// re-encoded and decoded again by `nnlens-onnx`.
    fn decoded_again(m: &pb::ModelProto) -> ours::ModelProto {
        nnlens_onnx::decode_model(&m.encode_to_vec()).unwrap()
    }

    fn tensor(name: &str, location: Option<i32>) -> pb::TensorProto {
        pb::TensorProto {
            dims: vec![2, 3],
            data_type: 1,
            segment: Some(pb::tensor_proto::Segment { begin: 1, end: 2 }),
            float_data: vec![1.5, -2.0],
            int32_data: vec![-3, 4],
            string_data: vec![b"s".to_vec()],
            int64_data: vec![-5, i64::MAX],
            name: name.into(),
            doc_string: "doc".into(),
            raw_data: vec![0, 1, 255],
            double_data: vec![0.25],
            uint64_data: vec![u64::MAX],
            data_location: location,
            external_data: vec![pb::StringStringEntryProto {
                key: "location".into(),
                value: "w.bin".into(),
            }],
        }
    }

    fn value_info(name: &str) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{Dimension, dimension::Value};
        let dim = |value, denotation: &str| Dimension { denotation: denotation.into(), value };
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                denotation: "TENSOR".into(),
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 11,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![
                            dim(Some(Value::DimParam("N".into())), "DATA_BATCH"),
                            dim(Some(Value::DimValue(3)), ""),
                            dim(None, ""),
                        ],
                    }),
                })),
            }),
            doc_string: "doc".into(),
        }
    }

    /// A graph with every field `nnlens-onnx` reads set (and some it does not), nested `depth`
    /// times in graph attributes.
    fn graph(depth: usize) -> pb::GraphProto {
        let sub = (depth > 0).then(|| graph(depth - 1));
        let attribute = pb::AttributeProto {
            name: "every".into(),
            ref_attr_name: "ref".into(),
            doc_string: "doc".into(),
            r#type: 5,
            f: 0.5,
            i: -7,
            s: b"bytes".to_vec(),
            t: Some(tensor("t", None)),
            g: sub.clone(),
            sparse_tensor: Some(pb::SparseTensorProto {
                values: Some(tensor("v", None)),
                indices: None,
                dims: vec![4],
            }),
            floats: vec![1.0, 2.0],
            ints: vec![-1, 2],
            strings: vec![b"a".to_vec(), Vec::new()],
            tensors: vec![tensor("t1", Some(0)), tensor("t2", Some(1))],
            graphs: sub.into_iter().collect(),
            sparse_tensors: Vec::new(),
            type_protos: vec![pb::TypeProto::default()],
        };
        pb::GraphProto {
            node: vec![
                pb::NodeProto {
                    input: vec!["x".into(), String::new()],
                    output: vec!["y".into()],
                    name: "n".into(),
                    op_type: "Op".into(),
                    domain: "ai.onnx.ml".into(),
                    attribute: vec![attribute, pb::AttributeProto::default()],
                    doc_string: "doc".into(),
                },
                pb::NodeProto::default(),
            ],
            name: format!("graph {depth}"),
            initializer: vec![tensor("w", Some(1)), tensor("b", None)],
            input: vec![
                value_info("x"),
                pb::ValueInfoProto { name: "untyped".into(), ..Default::default() },
                pb::ValueInfoProto {
                    name: "no kind".into(),
                    r#type: Some(pb::TypeProto::default()),
                    ..Default::default()
                },
            ],
            output: vec![value_info("y")],
            value_info: vec![value_info("z")],
            doc_string: "doc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_copy_is_what_decoding_again_gave() {
        let every = pb::ModelProto {
            ir_version: 9,
            opset_import: vec![
                pb::OperatorSetIdProto { domain: String::new(), version: 13 },
                pb::OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 3 },
            ],
            producer_name: "p".into(),
            producer_version: "1".into(),
            domain: "d".into(),
            model_version: 2,
            doc_string: "doc".into(),
            graph: Some(graph(2)),
            metadata_props: vec![pb::StringStringEntryProto { key: "k".into(), value: "v".into() }],
            ..Default::default()
        };
        let fixture = pb::ModelProto::decode(&*fixture_bytes()).unwrap();
        for m in [every, fixture, pb::ModelProto::default()] {
            assert_eq!(to_ours(&m), decoded_again(&m));
        }
    }

    /// x [N, 3] > `Scaler` (offset, scale) > scaled.
    fn scaler_model(offset: &[f32], scale: &[f32]) -> ours::ModelProto {
        use ours::{AttributeProto, GraphProto, ModelProto, NodeProto, ValueInfoProto, elem};
        let node = NodeProto {
            domain: "ai.onnx.ml".into(),
            ..NodeProto::new(
                "Scaler",
                "scaler",
                &["x"],
                &["scaled"],
                vec![
                    AttributeProto::floats("offset", offset),
                    AttributeProto::floats("scale", scale),
                ],
            )
        };
        let graph = GraphProto {
            node: vec![node],
            input: vec![ValueInfoProto::tensor("x", elem::FLOAT, &[None, Some(3)])],
            output: vec![ValueInfoProto::tensor("scaled", elem::FLOAT, &[None, Some(3)])],
            ..Default::default()
        };
        let mut m = ModelProto::new(graph, 13);
        m.opset_import.push(ours::OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 3 });
        m
    }

    #[test]
    fn both_messages_are_lowered_alike() {
        let model = scaler_model(&[1.0, 2.0, 3.0], &[0.5]);
        let mut theirs = pb::ModelProto::decode(&*model.encode_to_vec()).unwrap();
        let mut copy = to_ours(&theirs);
        let rewritten = lower_unsupported(&mut theirs, &mut copy).unwrap();
        assert_eq!(rewritten, ["Scaler 'scaler'"]);
        assert_eq!(to_ours(&theirs), copy);
        let mut lowered = model.clone();
        assert_eq!(nnlens_onnx::lower_unsupported(&mut lowered).unwrap(), rewritten);
        assert_eq!(copy, lowered);

        // A malformed node: named, and neither message changed.
        let mut bad = model;
        bad.graph.as_mut().unwrap().node[0].output.clear();
        let mut theirs = pb::ModelProto::decode(&*bad.encode_to_vec()).unwrap();
        let mut copy = to_ours(&theirs);
        let before = theirs.clone();
        let e = lower_unsupported(&mut theirs, &mut copy).unwrap_err();
        assert_eq!(e, "Scaler node 'scaler' needs one input and one output");
        assert_eq!((theirs, copy), (before.clone(), to_ours(&before)));
    }

    #[test]
    fn tract_runs_a_lowered_scaler() {
        use nnlens_core::{BackendOptions, Model};
        let (offset, scale) = ([1.0f32, 2.0, 3.0], [0.5f32, -2.0, 4.0]);
        let bytes = scaler_model(&offset, &scale).encode_to_vec();
        let m = crate::TractModel::from_bytes(&bytes, "scaler.onnx", &BackendOptions::default())
            .unwrap();
        assert_eq!(m.structure().names(), ["scaled"]);
        assert_eq!(m.tensors().len(), 1);
        let x = ndarray::Array2::from_shape_fn((3, 3), |(b, i)| (b * 3 + i) as f32 * 0.7 - 1.0);
        let acts = m.predict(x.view().into_dyn(), None).unwrap();
        let got = acts.get("scaled").unwrap();
        for ((b, i), v) in x.indexed_iter() {
            assert_eq!(got[[b, i]], (v - offset[i]) * scale[i], "{b} {i}");
        }

        let mut bad = scaler_model(&offset, &scale);
        bad.graph.as_mut().unwrap().node[0].input.clear();
        let e =
            crate::TractModel::from_bytes(&bad.encode_to_vec(), "bad.onnx", &Default::default())
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad.onnx: not a usable ONNX model: Scaler node 'scaler' needs one input and one output"
        );
    }
}
