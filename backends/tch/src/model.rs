//! [`TchModel`]: a TorchScript module run by libtorch (inference and autograd).

use std::path::Path;

use ndarray::{Array2, ArrayD, ArrayViewD, Axis};
use nnlens_core::{
    Activations, BackendOptions, CoreError, GradModel, InputStructure, LayerStructure, Loss, Model,
    ModelStructure, Parameter, Precision, Targets, TensorRequest,
};
use tch::{CModule, IValue, Kind, Tensor};

use crate::archive::{FileKind, inspect};
use crate::layers::{Returned, channel_axis, structure};
use crate::{LIBTORCH_VERSION, TchBackendError, first_line};

/// A TorchScript module loaded by libtorch, in eval mode, on the CPU or a CUDA GPU.
pub struct TchModel {
    label: String,
    module: CModule,
    device: tch::Device,
    /// The module's floating-point type (inputs are converted to it).
    kind: Kind,
    structure: ModelStructure,
    tensors: Vec<LayerStructure>,
    returned: Returned,
    /// The trainable parameters gradients are taken over, in `named_parameters` order.
    parameters: Vec<Parameter>,
}

impl std::fmt::Debug for TchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TchModel").field("label", &self.label).finish_non_exhaustive()
    }
}

/// libtorch's device for nnlens's, checking that a GPU asked for is there.
fn torch_device(device: nnlens_core::Device) -> Result<tch::Device, TchBackendError> {
    match device {
        nnlens_core::Device::Cpu => Ok(tch::Device::Cpu),
        nnlens_core::Device::Cuda(n) => {
            crate::load_cuda_library();
            let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
            if !tch::Cuda::is_available() || count == 0 {
                return Err(TchBackendError::Device(format!(
                    "--device cuda:{n}: libtorch finds no CUDA GPU here (no device, no driver, or a libtorch without CUDA)"
                )));
            }
            if n >= count {
                return Err(TchBackendError::Device(format!(
                    "--device cuda:{n}: libtorch sees {count} CUDA GPU(s), cuda:0 to cuda:{}",
                    count - 1
                )));
            }
            Ok(tch::Device::Cuda(n))
        }
    }
}

impl TchModel {
    /// Loads a TorchScript file.
    ///
    /// The input shape is `options.input_shape`, else the one the export script recorded
    /// in the file.
    ///
    /// # Errors
    /// A missing file, a file that is not TorchScript (a `torch.save` checkpoint, ONNX, ...), a
    /// file libtorch cannot read (saved by a newer torch, say), no input shape, a forward that
    /// refuses that shape or returns something else than tensors, a GPU that is not there.
    pub fn load(path: &Path, options: &BackendOptions) -> Result<Self, TchBackendError> {
        let label = path.display().to_string();
        let invalid = |message: String| TchBackendError::Invalid { label: label.clone(), message };
        let metadata = match inspect(path) {
            Err(source) if source.kind() == std::io::ErrorKind::InvalidData => {
                return Err(invalid(source.to_string()));
            }
            Err(source) => return Err(TchBackendError::Io { path: label, source }),
            Ok(FileKind::TorchScript(metadata)) => metadata,
            Ok(FileKind::Checkpoint) => {
                return Err(invalid(
                    "a torch.save() checkpoint (a pickled module or state_dict), not TorchScript: \
                     export the module with torch.jit.trace or torch.jit.script and .save() \
                     (tests/fixtures/torchscript/export.py shows how)"
                        .into(),
                ));
            }
            Ok(FileKind::Other(why)) => {
                return Err(invalid(format!("not a TorchScript file: {why}")));
            }
        };
        let device = torch_device(options.device)?;
        if let Some(threads) = options.threads {
            tch::set_num_threads(i32::try_from(threads.max(1)).unwrap_or(i32::MAX));
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            let saved_by = metadata
                .torch_version
                .as_deref()
                .map(|v| format!(" (saved by torch {v})"))
                .unwrap_or_default();
            invalid(format!(
                "libtorch {LIBTORCH_VERSION} cannot load this TorchScript file{saved_by}: {}; \
                 a file saved by a newer torch than {LIBTORCH_VERSION} may not load (save it with torch <= {LIBTORCH_VERSION})",
                first_line(&e.to_string())
            ))
        })?;
        module.set_eval();
        let named = module.named_parameters().map_err(|e| invalid(first_line(&e.to_string())))?;
        let own_kind = named
            .iter()
            .map(|(_, t)| t.kind())
            .find(|k| matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16))
            .unwrap_or(Kind::Float);
        let kind = match (options.precision, own_kind) {
            (Precision::F64, _) => Kind::Double,
            (_, Kind::Double) => Kind::Double,
            _ => Kind::Float,
        };
        if kind != own_kind {
            module.to(device, kind, false);
        }
        let Some(input_shape) = options.input_shape.clone().or(metadata.input_shape) else {
            return Err(invalid(
                "a TorchScript file stores no input shape: give --input-shape (one sample, \
                 channels first, e.g. 3,224,224), or export with tests/fixtures/torchscript/export.py, \
                 which records it"
                    .into(),
            ));
        };
        let input = InputStructure {
            name: "input".into(),
            channel_axis: channel_axis(&input_shape),
            shape: input_shape,
            dtype: if kind == Kind::Double { "f64" } else { "f32" }.into(),
        };
        // What forward returns for batches of 1 and 2 zeros.
        let probe = |batch: usize| -> Result<(Returned, Vec<Vec<usize>>), TchBackendError> {
            let mut shape = vec![batch as i64];
            shape.extend(input.shape.iter().map(|&d| d as i64));
            let x = Tensor::zeros(shape.as_slice(), (kind, device));
            let out = tch::no_grad(|| module.forward_is(&[IValue::Tensor(x)])).map_err(|e| {
                invalid(format!(
                    "forward does not take a batch of shape {shape:?} (the input shape {:?}): {}",
                    input.shape,
                    first_line(&e.to_string())
                ))
            })?;
            let (returned, tensors) = unpack(out).map_err(&invalid)?;
            let shapes =
                tensors.iter().map(|t| t.size().iter().map(|&d| d as usize).collect()).collect();
            Ok((returned, shapes))
        };
        let (returned, at_batch_1) = probe(1)?;
        let (returned_2, at_batch_2) = probe(2)?;
        if returned != returned_2 {
            return Err(invalid("forward returns other entries for a batch of 2 than of 1".into()));
        }
        let (structure, tensors) =
            structure(input, &returned, &at_batch_1, &at_batch_2).map_err(&invalid)?;
        let mut trainable: Vec<(String, Vec<usize>)> = named
            .iter()
            .filter(|(_, t)| t.requires_grad() && t.is_floating_point())
            .map(|(name, t)| (name.clone(), t.size().iter().map(|&d| d as usize).collect()))
            .collect();
        if let Some(patterns) = &options.parameters {
            let pairs: Vec<(String, String)> = trainable
                .iter()
                .map(|(name, _)| {
                    (name.clone(), name.rsplit_once('.').map_or("", |(m, _)| m).to_string())
                })
                .collect();
            let keep = nnlens_core::select_parameters(patterns, &pairs)?;
            trainable =
                trainable.into_iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| p).collect();
        }
        let parameters =
            trainable.into_iter().map(|(name, shape)| Parameter { name, shape }).collect();
        Ok(Self { label, module, device, kind, structure, tensors, returned, parameters })
    }

    fn engine(&self, message: impl std::fmt::Display) -> TchBackendError {
        TchBackendError::Engine {
            label: self.label.clone(),
            message: first_line(&message.to_string()),
        }
    }

    /// The batch as a tensor of the module's type on its device.
    fn input(&self, x: &ArrayViewD<'_, f32>) -> Result<Tensor, TchBackendError> {
        let x = x.as_standard_layout();
        let shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
        let data = x.as_slice().expect("standard layout");
        Tensor::f_from_slice(data)
            .and_then(|t| t.f_view(shape.as_slice()))
            .and_then(|t| t.f_to_dtype(self.kind, false, false))
            .and_then(|t| t.f_to_device(self.device))
            .map_err(|e| self.engine(e))
    }

    /// Runs forward on a batch: the returned tensors, in order.
    fn forward(&self, x: Tensor) -> Result<Vec<Tensor>, TchBackendError> {
        let out = self.module.forward_is(&[IValue::Tensor(x)]).map_err(|e| self.engine(e))?;
        let (returned, tensors) = unpack(out).map_err(|e| self.engine(e))?;
        if returned != self.returned {
            return Err(
                self.engine("forward returned other entries than when the model was loaded")
            );
        }
        Ok(tensors)
    }

    fn run(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> Result<Activations, TchBackendError> {
        let request = TensorRequest::new(&self.structure, &self.tensors, layers)?;
        self.structure.input.check_batch(&self.label, &x)?;
        let input = self.input(&x)?;
        let returned = tch::no_grad(|| self.forward(input))?;
        let arrays = request
            .distinct()
            .iter()
            .map(|name| {
                let at = self
                    .tensors
                    .iter()
                    .position(|t| &t.tensor == name)
                    .expect("a requested tensor");
                to_array(&returned[at]).map_err(|e| self.engine(e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(request.assemble(arrays))
    }

    /// The trainable tensors of the module, in the order of [`GradModel::parameters`].
    fn parameter_tensors(&self) -> Result<Vec<Tensor>, TchBackendError> {
        let mut named = self.module.named_parameters().map_err(|e| self.engine(e))?;
        self.parameters
            .iter()
            .map(|p| {
                let at = named
                    .iter()
                    .position(|(name, _)| name == &p.name)
                    .ok_or_else(|| self.engine(format!("parameter '{}' vanished", p.name)))?;
                Ok(named.swap_remove(at).1)
            })
            .collect()
    }

    /// The loss of one example's output `[1, outputs]`, a scalar tensor.
    fn loss(
        &self,
        out: &Tensor,
        loss: Loss,
        class: Option<usize>,
        target: Option<&[f32]>,
    ) -> Result<Tensor, tch::TchError> {
        let out = out.f_flatten(0, -1)?;
        match (loss, class, target) {
            (Loss::CrossEntropyFromProbabilities, Some(y), _) => {
                out.f_get(y as i64)?.f_log()?.f_neg()
            }
            (Loss::CrossEntropyFromLogits, Some(y), _) => {
                out.f_log_softmax(0, self.kind)?.f_get(y as i64)?.f_neg()
            }
            (Loss::MeanSquaredError, _, Some(t)) => {
                let t = Tensor::f_from_slice(t)?
                    .f_to_dtype(self.kind, false, false)?
                    .f_to_device(self.device)?;
                out.f_sub(&t)?.f_square()?.f_mean(self.kind)
            }
            _ => unreachable!("checked by check_loss"),
        }
    }
}

/// The tensors of what forward returned, and how they were laid out.
fn unpack(out: IValue) -> Result<(Returned, Vec<Tensor>), String> {
    let not_tensor = |what: &str| {
        format!(
            "forward returns {what}; nnlens needs a tensor, a tuple or list of tensors, or a Dict[str, Tensor]"
        )
    };
    let tensor = |v: IValue, at: &str| match v {
        IValue::Tensor(t) => Ok(t),
        other => Err(not_tensor(&format!("{} at {at}", kind_name(&other)))),
    };
    match out {
        IValue::Tensor(t) => Ok((Returned::Tensor, vec![t])),
        IValue::TensorList(ts) => Ok((Returned::Sequence(ts.len()), ts)),
        IValue::Tuple(vs) | IValue::GenericList(vs) => {
            let n = vs.len();
            let ts = vs
                .into_iter()
                .enumerate()
                .map(|(i, v)| tensor(v, &format!("index {i}")))
                .collect::<Result<_, _>>()?;
            Ok((Returned::Sequence(n), ts))
        }
        IValue::GenericDict(entries) => {
            let mut keys = Vec::with_capacity(entries.len());
            let mut ts = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let IValue::String(key) = k else {
                    return Err(not_tensor(&format!("a dict with {} keys", kind_name(&k))));
                };
                ts.push(tensor(v, &format!("key '{key}'"))?);
                keys.push(key);
            }
            Ok((Returned::Dict(keys), ts))
        }
        other => Err(not_tensor(kind_name(&other))),
    }
}

fn kind_name(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "a tensor",
        IValue::Double(_) => "a float",
        IValue::Int(_) => "an int",
        IValue::Bool(_) => "a bool",
        IValue::Tuple(_) => "a tuple",
        IValue::IntList(_) | IValue::DoubleList(_) | IValue::BoolList(_) => "a list of numbers",
        IValue::String(_) => "a string",
        IValue::StringList(_) => "a list of strings",
        IValue::TensorList(_) => "a list of tensors",
        IValue::GenericList(_) => "a list",
        IValue::GenericDict(_) => "a dict",
        IValue::Object(_) => "an object",
        IValue::Device(_) => "a device",
        #[allow(unreachable_patterns)]
        _ => "a value of another type",
    }
}

/// A tensor as an `f32` array on the CPU.
fn to_array(t: &Tensor) -> Result<ArrayD<f32>, tch::TchError> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let t =
        t.f_to_device(tch::Device::Cpu)?.f_to_dtype(Kind::Float, false, false)?.f_contiguous()?;
    let n = shape.iter().product();
    let mut data = vec![0f32; n];
    t.f_copy_data(&mut data, n)?;
    Ok(ArrayD::from_shape_vec(shape, data).expect("numel values"))
}

impl Model for TchModel {
    fn backend(&self) -> &'static str {
        "tch"
    }

    fn structure(&self) -> &ModelStructure {
        &self.structure
    }

    fn predict(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> nnlens_core::Result<Activations> {
        Ok(self.run(x, layers)?)
    }
}

impl GradModel for TchModel {
    fn backend(&self) -> &'static str {
        "tch"
    }

    fn structure(&self) -> &ModelStructure {
        &self.structure
    }

    fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    fn output(&self, x: ArrayViewD<'_, f32>) -> nnlens_core::Result<ArrayD<f32>> {
        self.predict_output(x)
    }

    fn per_example_gradients(
        &self,
        x: ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        loss: Loss,
    ) -> nnlens_core::Result<Array2<f32>> {
        let batch = self.structure.input.check_batch(&self.label, &x)?;
        crate::check_targets(&self.structure, batch, targets, loss)?;
        let p = self.parameter_count();
        if p == 0 {
            return Err(TchBackendError::Invalid {
                label: self.label.clone(),
                message: "the module has no trainable parameter (requires_grad) selected".into(),
            }
            .into());
        }
        let params = self.parameter_tensors()?;
        let output = self.structure.output;
        let mut data = vec![0f32; batch * p];
        for (i, row) in data.chunks_mut(p).enumerate() {
            let xi = self.input(&x.slice_axis(Axis(0), (i..i + 1).into()))?;
            let (class, target) = match targets {
                Targets::Classes(c) => (Some(c[i]), None),
                Targets::Values(v) => (None, Some(v.row(i).to_vec())),
            };
            let out = self.forward(xi)?;
            let l = self
                .loss(&out[output], loss, class, target.as_deref())
                .map_err(|e| self.engine(e))?;
            let grads =
                Tensor::f_run_backward(&[&l], &params, false, false).map_err(|e| self.engine(e))?;
            let mut offset = 0;
            for (g, param) in grads.iter().zip(&self.parameters) {
                let n = param.len();
                if g.defined() {
                    let g = to_array(g).map_err(|e| self.engine(e))?;
                    row[offset..offset + n].copy_from_slice(g.as_slice().expect("contiguous"));
                }
                // An undefined gradient: the parameter does not reach the loss (zeros).
                offset += n;
            }
            if let Some((index, &value)) = row.iter().enumerate().find(|(_, g)| !g.is_finite()) {
                return Err(CoreError::NonFinite {
                    what: format!("the loss gradient of example {i}"),
                    value,
                    index,
                });
            }
        }
        Ok(Array2::from_shape_vec((batch, p), data).expect("batch x parameters values"))
    }
}
