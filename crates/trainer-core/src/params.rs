//! Walking a model's parameters by module path: reading trainable values and gradients, and
//! writing updated values back. Paths are burn module paths (`layers.0.self_attn.q_proj.weight`,
//! `layers.0.self_attn.q_proj.lora.lora_a`, `norm.gamma`), stable across runs, so optimizer state
//! keyed by them survives a restart.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::{GradientCheckpointingStrategy, Gradients};
use infuse_llama_model::{Llama, burn};

/// A trainable parameter: its path, shape and current value (flattened, without autodiff).
#[derive(Debug, Clone)]
pub struct ParamInfo {
    /// Module path.
    pub path: String,
    /// Shape of the parameter.
    pub shape: Vec<usize>,
    /// Whether weight decay applies (matrices yes; norms and biases no).
    pub decay: bool,
}

struct Collector<'a> {
    path: Vec<String>,
    only_trainable: bool,
    out: &'a mut Vec<(ParamInfo, Tensor<1>)>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if self.only_trainable && !value.is_require_grad() {
            return;
        }
        let shape = value.dims().to_vec();
        let n = shape.iter().product::<usize>();
        let info = ParamInfo { path: self.path.join("."), shape, decay: D >= 2 };
        self.out.push((info, value.inner().reshape([n])));
    }
}

/// Every float parameter (or only those requiring gradients) with its flattened value.
pub fn collect_params(model: &Llama, only_trainable: bool) -> Vec<(ParamInfo, Tensor<1>)> {
    let mut out = Vec::new();
    model.visit(&mut Collector { path: Vec::new(), only_trainable, out: &mut out });
    out
}

struct GradTaker<'a> {
    path: Vec<String>,
    grads: &'a mut Gradients,
    out: &'a mut BTreeMap<String, Tensor<1>>,
}

impl ModuleVisitor for GradTaker<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        if let Some(g) = value.grad_remove(self.grads) {
            let n = g.shape().num_elements();
            // Accumulate in f32 whatever the parameter dtype (bf16 gradients summed over
            // micro-batches would lose precision, and the head's gradient arrives in f32).
            let g = g.reshape([n]).cast(burn::tensor::DType::F32);
            let key = self.path.join(".");
            let merged = match self.out.remove(&key) {
                Some(prev) => prev + g,
                None => g,
            };
            self.out.insert(key, merged);
        }
    }
}

/// Move the gradients of every trainable parameter out of `grads` and add them (flattened) into
/// `into`, keyed by module path.
pub fn accumulate_grads(model: &Llama, grads: &mut Gradients, into: &mut BTreeMap<String, Tensor<1>>) {
    model.visit(&mut GradTaker { path: Vec::new(), grads, out: into });
}

struct Writer<'a> {
    path: Vec<String>,
    values: &'a mut BTreeMap<String, Tensor<1>>,
}

impl ModuleMapper for Writer<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path.join(".");
        let Some(new) = self.values.remove(&key) else { return param };
        let (id, old, mapper) = param.consume();
        let require_grad = old.is_require_grad();
        let autodiff = old.is_autodiff();
        let checkpointing = old.gradient_checkpointing_strategy();
        let shape = old.shape();
        let dtype = old.dtype();
        drop(old);
        let value: Tensor<D> = new.cast(dtype).reshape(shape);
        let value = if autodiff { autodiff_leaf(value, checkpointing, require_grad) } else { value };
        Param::from_mapped_value(id, value, mapper)
    }
}

/// `value` (without autodiff) as a new autodiff leaf: a node of its own, in no graph yet.
fn autodiff_leaf<const D: usize>(value: Tensor<D>, checkpointing: Option<GradientCheckpointingStrategy>, require_grad: bool) -> Tensor<D> {
    let mut leaf = Tensor::from_inner(value);
    if let Some(strategy) = checkpointing {
        leaf = leaf.with_gradient_checkpointing_strategy(strategy);
    }
    if require_grad { leaf.require_grad() } else { leaf }
}

struct Fork;

impl ModuleMapper for Fork {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        if !value.is_require_grad() {
            return Param::from_mapped_value(id, value, mapper);
        }
        let checkpointing = value.gradient_checkpointing_strategy();
        Param::from_mapped_value(id, autodiff_leaf(value.inner(), checkpointing, true), mapper)
    }
}

/// A copy of `model` whose trainable parameters are new autodiff leaves (same ids and values,
/// no storage copied), so a forward/backward on it builds a graph of its own that never merges
/// with another thread's.
pub(crate) fn fork_trainable(model: &Llama) -> Llama {
    model.clone().map(&mut Fork)
}

/// Replace parameter values by path (flattened, any dtype: cast to the parameter's dtype),
/// keeping ids, autodiff and gradient settings. Entries that were used are removed from `values`.
pub fn write_params(model: Llama, values: &mut BTreeMap<String, Tensor<1>>) -> Llama {
    model.map(&mut Writer { path: Vec::new(), values })
}
