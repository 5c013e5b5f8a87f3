//! The ONNX decoding of nnlens-onnx on arbitrary bytes: the protobuf, the rewrites, every
//! tensor's values (initializers and tensor attributes), the graph and its layers.
//!
//! Values in external files are not supported by nnlens-onnx (a tensor with
//! `data_location = 1` is an error naming it), so that error path is what is fuzzed of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nnlens_core::InputStructure;
use nnlens_onnx::proto::{TensorProto, ValueInfoProto, tensor_shape_proto::dimension, type_proto};
use nnlens_onnx::{
    TensorFact, build_layers, decode_model, float_values, int_values, lower_unsupported,
    read_graph, tensor_dims,
};

fn tensor(t: &TensorProto) {
    let dims = tensor_dims(t);
    for n in
        [float_values(t).map(|v| v.len()), int_values(t).map(|v| v.len())].into_iter().flatten()
    {
        let dims = dims.as_ref().expect("values read, dimensions not");
        assert_eq!(n, dims.iter().product::<usize>());
    }
}

/// The shape a value info declares, with its first axis at batch size `batch` and unknown
/// axes 1.
fn declared(info: &ValueInfoProto, batch: usize) -> Option<Vec<usize>> {
    let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let dims = &t.shape.as_ref()?.dim;
    Some(
        dims.iter()
            .enumerate()
            .map(|(i, d)| match d.value {
                _ if i == 0 => batch,
                Some(dimension::Value::DimValue(v)) if (1..=1 << 16).contains(&v) => v as usize,
                _ => 1,
            })
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut model) = decode_model(data) else { return };
    let _ = lower_unsupported(&mut model);
    if let Some(graph) = &model.graph {
        graph.initializer.iter().for_each(tensor);
        for node in &graph.node {
            for a in &node.attribute {
                a.t.iter().chain(&a.tensors).for_each(tensor);
            }
        }
    }
    let Ok(info) = read_graph(&model) else { return };
    let input = info.input_structure().unwrap_or_else(|_| {
        let shape: Vec<usize> = info.input_sample_dims.iter().map(|d| d.unwrap_or(1)).collect();
        InputStructure {
            name: info.input_name.clone(),
            channel_axis: nnlens_onnx::guess_sample_channel_axis(&shape),
            shape,
            dtype: "f32".into(),
        }
    });
    // What an engine would find: the declared shapes where there are some, else a vector per
    // sample for every second tensor.
    let graph = model.graph.as_ref().expect("read_graph found a graph");
    let infos: Vec<&ValueInfoProto> = graph.value_info.iter().chain(&graph.output).collect();
    let facts: Vec<TensorFact> = info
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| match infos.iter().find(|v| v.name == t.name) {
            Some(v) => TensorFact {
                is_float: true,
                at_batch_1: declared(v, 1),
                at_batch_2: declared(v, 2),
            },
            None => TensorFact {
                is_float: i % 2 == 0,
                at_batch_1: Some(vec![1, i % 5 + 1]),
                at_batch_2: Some(vec![2, i % 5 + 1]),
            },
        })
        .collect();
    if let Ok(layers) = build_layers(&info, &input, &facts) {
        assert!(!layers.structure.layers.is_empty());
        assert!(layers.tensors.len() >= layers.structure.layers.len());
    }
    let _ = build_layers(&info, &input, &facts[..facts.len() / 2]);
});
