//! Fused CPU kernels with hand-written backward passes for the element-wise chains of training.
//!
//! burn's CPU backend (`flex`) runs every element-wise op on one thread, and autodiff turns
//! attention's softmax, RMSNorm, SwiGLU and RoPE into chains of such ops, each a full pass over
//! its tensor, forward and backward. Here each of them is one multi-threaded (rayon) pass over
//! contiguous f32 rows, forward and backward, registered with burn's autodiff through a
//! [`backend_extension`] trait: [`FusedOps`], implemented for `Flex` and `Autodiff<Flex>`.
//!
//! The kernels run for f32 tensors on the flex device ([`fused_f32`]); for everything else (CUDA,
//! libtorch, bf16/f16) the public functions here compute the same thing with composed burn ops.
//! The kernels match those ops to float rounding (tests below compare values and gradients).
//!
//! Shapes:
//! - [`FusedOps::masked_softmax`]: `x: [B, H, T, S]`, `bias: [B|1, 1, T, S]` (0 or -inf), softmax
//!   of `x + bias` over `S`. Backward saves the output `P` only.
//! - [`FusedOps::rms_norm`]: `x: [.., D]`, `gamma: [D]`, `y = x / sqrt(mean(x²) + eps) * gamma`.
//!   Backward saves `x`, `gamma` and one `1/rms` per row.
//! - [`FusedOps::swiglu`]: `silu(gate) * up`, same shapes. Backward saves both inputs.
//! - [`FusedOps::rope`]: rotate-half RoPE of `x: [B, T, H, hd]` with `cos`, `sin: [B|1, 1, T, hd]`.
//!   Backward applies the transposed rotation; nothing but `cos`/`sin` is saved.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

/// Fused training kernels (see the module documentation). Implemented for `Flex` and
/// `Autodiff<Flex>` only: call them through [`fused_f32`]-guarded code.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// Softmax over the last dim of `x + bias`; `x: [B, H, T, S]`, `bias: [B|1, 1, T, S]`
    /// (not differentiated).
    fn masked_softmax(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
    /// RMSNorm over the last dim: `x / sqrt(mean(x²) + eps) * gamma`.
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> FloatTensor<Self>;
    /// `silu(gate) * up`.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Rotate-half RoPE of `x: [B, T, H, hd]` with `cos`, `sin: [B|1, 1, T, hd]` (not
    /// differentiated).
    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Whether the fused kernels apply to `x`: f32 on the flex (CPU) device, with or without autodiff.
pub fn fused_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && x.device().inner() == Device::flex()
}

/// `softmax(x + bias)` over the last dim (see [`FusedOps::masked_softmax`]); composed burn ops
/// where the kernel does not apply (see [`fused_f32`]).
pub fn masked_softmax(x: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    if !(fused_f32(&x) && fused_f32(&bias)) {
        let dtype = x.dtype();
        return burn::tensor::activation::softmax(x + bias.cast(dtype), 3);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::masked_softmax(x.into_dispatch(), bias.into_dispatch()))
}

/// RMSNorm over the last dim (see [`FusedOps::rms_norm`]); burn's formula where the kernel does
/// not apply.
pub fn rms_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, eps: f64) -> Tensor<D> {
    if !(fused_f32(&x) && fused_f32(&gamma)) {
        let dtype = x.dtype();
        let rms = (x.clone().cast(DType::F32).square().mean_dim(D - 1) + eps).sqrt();
        return (x / rms.cast(dtype)) * gamma.cast(dtype).unsqueeze();
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::rms_norm(x.into_dispatch(), gamma.into_dispatch(), eps))
}

/// `silu(gate) * up` (see [`FusedOps::swiglu`]); composed where the kernel does not apply.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    if !(fused_f32(&gate) && fused_f32(&up)) {
        return burn::tensor::activation::silu(gate) * up;
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::swiglu(gate.into_dispatch(), up.into_dispatch()))
}

/// Rotate-half RoPE on `x: [B, T, H, hd]` (see [`FusedOps::rope`]); composed where the kernel
/// does not apply.
pub fn rope(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    if !(fused_f32(&x) && fused_f32(&cos) && fused_f32(&sin)) {
        return crate::rope::apply_rotary(x.swap_dims(1, 2), &cos, &sin).swap_dims(1, 2);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::rope(x.into_dispatch(), cos.into_dispatch(), sin.into_dispatch()))
}

/// Rows per rayon task (rows are 64 to a few thousand floats).
const MIN_ROWS: usize = 16;

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("fused kernels take contiguous f32 tensors")
}

fn tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

fn last_dim(t: &FlexTensor) -> usize {
    t.shape().as_slice().last().copied().unwrap_or(1)
}

mod kernels {
    use super::*;

    pub(super) fn softmax(x: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (x, bias) = (contiguous(x), contiguous(bias));
        let shape = x.shape();
        let [_, h, t, s] = <[usize; 4]>::try_from(shape.as_slice()).expect("masked_softmax takes [B, H, T, S]");
        let per_batch_bias = bias.shape()[0] > 1;
        let (xs, bs) = (slice(&x), slice(&bias));
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(s).zip(xs.par_chunks(s)).enumerate().with_min_len(MIN_ROWS).for_each(|(r, (o, xr))| {
            let (bi, ti) = (r / (h * t), r % t);
            let brow = &bs[((if per_batch_bias { bi } else { 0 }) * t + ti) * s..][..s];
            let mut max = f32::NEG_INFINITY;
            for ((o, &x), &b) in o.iter_mut().zip(xr).zip(brow) {
                *o = x + b;
                max = max.max(*o);
            }
            let mut sum = 0f32;
            for o in o.iter_mut() {
                *o = (*o - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|o| *o *= inv);
        });
        tensor(out, shape)
    }

    /// `dx = p ⊙ (dp - rowsum(dp ⊙ p))`.
    pub(super) fn softmax_backward(p: &FlexTensor, dp: FlexTensor) -> FlexTensor {
        let dp = contiguous(dp);
        let s = last_dim(p);
        let (ps, dps) = (slice(p), slice(&dp));
        let mut out = vec![0f32; ps.len()];
        out.par_chunks_mut(s).zip(ps.par_chunks(s).zip(dps.par_chunks(s))).with_min_len(MIN_ROWS).for_each(|(o, (pr, dr))| {
            let dot: f32 = pr.iter().zip(dr).map(|(p, d)| p * d).sum();
            for ((o, &p), &d) in o.iter_mut().zip(pr).zip(dr) {
                *o = p * (d - dot);
            }
        });
        tensor(out, p.shape())
    }

    /// `(y, 1/rms per row)`.
    pub(super) fn rms_norm(x: &FlexTensor, gamma: &FlexTensor, eps: f64) -> (FlexTensor, Vec<f32>) {
        let d = last_dim(x);
        let (xs, g) = (slice(x), slice(gamma));
        let mut out = vec![0f32; xs.len()];
        let mut rstd = vec![0f32; xs.len() / d.max(1)];
        out.par_chunks_mut(d).zip(xs.par_chunks(d)).zip(rstd.par_iter_mut()).with_min_len(MIN_ROWS).for_each(|((o, xr), r)| {
            let ms = xr.iter().map(|x| x * x).sum::<f32>() / d as f32;
            let rs = 1.0 / (f64::from(ms) + eps).sqrt() as f32;
            *r = rs;
            for ((o, &x), &g) in o.iter_mut().zip(xr).zip(g) {
                *o = x * rs * g;
            }
        });
        (tensor(out, x.shape()), rstd)
    }

    /// `(dx, dgamma)`; `dgamma` is summed over fixed row blocks in order (deterministic).
    pub(super) fn rms_norm_backward(x: &FlexTensor, gamma: &FlexTensor, rstd: &[f32], dy: FlexTensor) -> (FlexTensor, FlexTensor) {
        const BLOCK: usize = 32;
        let dy = contiguous(dy);
        let d = last_dim(x);
        let (xs, g, dys) = (slice(x), slice(gamma), slice(&dy));
        let mut dx = vec![0f32; xs.len()];
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(d * BLOCK)
            .zip(xs.par_chunks(d * BLOCK).zip(dys.par_chunks(d * BLOCK)))
            .zip(rstd.par_chunks(BLOCK))
            .map(|((dxb, (xb, dyb)), rb)| {
                let mut dg = vec![0f32; d];
                for (((dxr, xr), dyr), &r) in dxb.chunks_mut(d).zip(xb.chunks(d)).zip(dyb.chunks(d)).zip(rb) {
                    let mut dot = 0f32;
                    for ((&x, &dy), (&g, dg)) in xr.iter().zip(dyr).zip(g.iter().zip(dg.iter_mut())) {
                        dot += g * dy * x;
                        *dg += dy * x * r;
                    }
                    let c = r * r * r * dot / d as f32;
                    for ((o, &x), (&dy, &g)) in dxr.iter_mut().zip(xr).zip(dyr.iter().zip(g)) {
                        *o = r * g * dy - c * x;
                    }
                }
                dg
            })
            .collect();
        let mut dgamma = vec![0f32; d];
        for p in &partials {
            dgamma.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        (tensor(dx, x.shape()), tensor(dgamma, gamma.shape()))
    }

    pub(super) fn swiglu(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
        let (gs, us) = (slice(gate), slice(up));
        let mut out = vec![0f32; gs.len()];
        out.par_chunks_mut(4096).zip(gs.par_chunks(4096).zip(us.par_chunks(4096))).for_each(|(o, (gb, ub))| {
            for ((o, &g), &u) in o.iter_mut().zip(gb).zip(ub) {
                *o = g / (1.0 + (-g).exp()) * u;
            }
        });
        tensor(out, gate.shape())
    }

    /// `(dgate, dup)`.
    pub(super) fn swiglu_backward(gate: &FlexTensor, up: &FlexTensor, dy: FlexTensor) -> (FlexTensor, FlexTensor) {
        let dy = contiguous(dy);
        let (gs, us, dys) = (slice(gate), slice(up), slice(&dy));
        let mut dg = vec![0f32; gs.len()];
        let mut du = vec![0f32; gs.len()];
        dg.par_chunks_mut(4096).zip(du.par_chunks_mut(4096)).zip(gs.par_chunks(4096).zip(us.par_chunks(4096)).zip(dys.par_chunks(4096))).for_each(
            |((dgb, dub), ((gb, ub), dyb))| {
                for ((dg, du), ((&g, &u), &dy)) in dgb.iter_mut().zip(dub.iter_mut()).zip(gb.iter().zip(ub).zip(dyb)) {
                    let s = 1.0 / (1.0 + (-g).exp());
                    *dg = dy * u * s * (1.0 + g * (1.0 - s));
                    *du = dy * g * s;
                }
            },
        );
        (tensor(dg, gate.shape()), tensor(du, up.shape()))
    }

    /// Rotate-half RoPE of `x: [B, T, H, hd]`; `sign = 1` forward, `-1` the transpose (backward).
    pub(super) fn rope(x: FlexTensor, cos: &FlexTensor, sin: &FlexTensor, sign: f32) -> FlexTensor {
        let x = contiguous(x);
        let shape = x.shape();
        let [_, t, h, hd] = <[usize; 4]>::try_from(shape.as_slice()).expect("rope takes [B, T, H, hd]");
        let per_batch = cos.shape()[0] > 1;
        let half = hd / 2;
        let (xs, cs, ss) = (slice(&x), slice(cos), slice(sin));
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(hd).zip(xs.par_chunks(hd)).enumerate().with_min_len(MIN_ROWS * 4).for_each(|(r, (o, xr))| {
            let (bi, ti) = (r / (t * h), (r / h) % t);
            let at = ((if per_batch { bi } else { 0 }) * t + ti) * hd;
            let (c, s) = (&cs[at..at + hd], &ss[at..at + hd]);
            if sign > 0.0 {
                // y1 = x1 c1 - x2 s1; y2 = x2 c2 + x1 s2
                for i in 0..half {
                    o[i] = xr[i] * c[i] - xr[i + half] * s[i];
                    o[i + half] = xr[i + half] * c[i + half] + xr[i] * s[i + half];
                }
            } else {
                // dx1 = dy1 c1 + dy2 s2; dx2 = dy2 c2 - dy1 s1
                for i in 0..half {
                    o[i] = xr[i] * c[i] + xr[i + half] * s[i + half];
                    o[i + half] = xr[i + half] * c[i + half] - xr[i] * s[i];
                }
            }
        });
        tensor(out, shape)
    }
}

impl FusedOps for Flex {
    fn masked_softmax(x: FlexTensor, bias: FlexTensor) -> FlexTensor {
        kernels::softmax(x, bias)
    }

    fn rms_norm(x: FlexTensor, gamma: FlexTensor, eps: f64) -> FlexTensor {
        kernels::rms_norm(&contiguous(x), &contiguous(gamma), eps).0
    }

    fn swiglu(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        kernels::swiglu(&contiguous(gate), &contiguous(up))
    }

    fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor) -> FlexTensor {
        kernels::rope(x, &contiguous(cos), &contiguous(sin), 1.0)
    }
}

/// Registers each parent's gradient (parents that do not require one are `None`).
macro_rules! register_parents {
    ($grads:expr, $parents:expr, [$($grad:expr),+]) => {
        for (node, grad) in $parents.into_iter().zip([$($grad),+]) {
            if let Some(node) = node {
                $grads.register::<Flex>(node.id, grad);
            }
        }
    };
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dp = grads.consume::<Flex>(&ops.node);
        register_parents!(grads, ops.parents, [kernels::softmax_backward(&ops.state, dp)]);
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    type State = (FlexTensor, FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, rstd) = ops.state;
        let (dx, dg) = kernels::rms_norm_backward(&x, &gamma, &rstd, dy);
        register_parents!(grads, ops.parents, [dx, dg]);
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (gate, up) = ops.state;
        let (dg, du) = kernels::swiglu_backward(&gate, &up, dy);
        register_parents!(grads, ops.parents, [dg, du]);
    }
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (cos, sin) = &ops.state;
        register_parents!(grads, ops.parents, [kernels::rope(dy, cos, sin, -1.0)]);
    }
}

// Each op runs its forward kernel once; when autodiff tracks an input, the step keeps what its
// backward needs.
impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn masked_softmax(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let ops = SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let p = kernels::softmax(x.into_primitive(), bias.into_primitive());
        match ops {
            OpsKind::Tracked(prep) => prep.finish(p.clone(), p),
            OpsKind::UnTracked(prep) => prep.finish(p),
        }
    }

    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let ops = RmsNormBackward.prepare::<C>([x.node(), gamma.node()]).compute_bound().stateful();
        let (x, gamma) = (contiguous(x.into_primitive()), contiguous(gamma.into_primitive()));
        let (y, rstd) = kernels::rms_norm(&x, &gamma, eps);
        match ops {
            OpsKind::Tracked(prep) => prep.finish((x, gamma, rstd), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let ops = SwigluBackward.prepare::<C>([gate.node(), up.node()]).compute_bound().stateful();
        let (gate, up) = (contiguous(gate.into_primitive()), contiguous(up.into_primitive()));
        let y = kernels::swiglu(&gate, &up);
        match ops {
            OpsKind::Tracked(prep) => prep.finish((gate, up), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self> {
        let ops = RopeBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let (cos, sin) = (contiguous(cos.into_primitive()), contiguous(sin.into_primitive()));
        let y = kernels::rope(x.into_primitive(), &cos, &sin, 1.0);
        match ops {
            OpsKind::Tracked(prep) => prep.finish((cos, sin), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::activation::{silu, softmax};

    fn dev() -> Device {
        Device::flex().autodiff()
    }

    fn rand<const D: usize>(dims: [usize; D]) -> Tensor<D> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), &dev())
    }

    fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
        let (a, b) = (a.into_data().try_into_vec::<f32>().expect("f32"), b.into_data().try_into_vec::<f32>().expect("f32"));
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst <= 2e-5 * scale, "{what}: max abs diff {worst} (scale {scale})");
    }

    /// Values and gradients (of `sum(y ⊙ w)` for a random `w`) of `fused` and `reference`.
    fn check<const D: usize, const N: usize>(inputs: [Tensor<D>; N], fused: impl Fn(Vec<Tensor<D>>) -> Tensor<D>, reference: impl Fn(Vec<Tensor<D>>) -> Tensor<D>) {
        let run = |f: &dyn Fn(Vec<Tensor<D>>) -> Tensor<D>| {
            let xs: Vec<Tensor<D>> = inputs.iter().map(|x| x.clone().detach().require_grad()).collect();
            let y = f(xs.clone());
            // The same weights for both calls (not from the device RNG, which parallel tests share).
            let n = y.shape().num_elements();
            let w = Tensor::<1>::from_data(TensorData::new((0..n).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<f32>>(), [n]), &dev()).reshape(y.dims());
            let grads = (y.clone() * w).sum().backward();
            let gs: Vec<Tensor<D>> = xs.iter().map(|x| Tensor::from_inner(x.grad(&grads).expect("grad"))).collect();
            (y, gs)
        };
        let (y1, g1) = run(&fused);
        let (y2, g2) = run(&reference);
        close(y1, y2, "value");
        for (i, (a, b)) in g1.into_iter().zip(g2).enumerate() {
            close(a, b, &format!("gradient of input {i}"));
        }
    }

    #[test]
    fn masked_softmax_matches_composed_ops() {
        let (b, h, t, s) = (2, 3, 5, 7);
        // A causal mask with one padded key per row of the second batch item.
        let mut bias = vec![0f32; b * t * s];
        for bi in 0..b {
            for ti in 0..t {
                for si in 0..s {
                    if si > ti + 2 || (bi == 1 && si == 0 && ti > 0) {
                        bias[(bi * t + ti) * s + si] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, t, s]), &dev());
        let (b1, b2) = (bias.clone(), bias);
        check(
            [rand([b, h, t, s])],
            move |x| masked_softmax(x[0].clone(), b1.clone()),
            move |x| softmax(x[0].clone() + b2.clone(), 3),
        );
    }

    #[test]
    fn masked_softmax_broadcasts_one_bias_over_the_batch() {
        let bias = rand([1, 1, 4, 6]);
        let x = rand([3, 2, 4, 6]);
        close(masked_softmax(x.clone(), bias.clone()), softmax(x + bias, 3), "value");
    }

    #[test]
    fn rms_norm_matches_burn() {
        let norm = burn::nn::RmsNormConfig::new(8).with_epsilon(1e-5).init(&dev());
        let gamma = rand([8]);
        let (g1, g2) = (gamma.clone(), gamma);
        // Gradients for both x and gamma (here as a second input, broadcast by hand).
        check::<2, 2>(
            [rand([6, 8]), g1.unsqueeze::<2>()],
            |x| rms_norm(x[0].clone(), x[1].clone().reshape([8]), 1e-5).clone(),
            |x| {
                let rms = (x[0].clone().square().mean_dim(1) + 1e-5).sqrt();
                (x[0].clone() / rms) * x[1].clone()
            },
        );
        let x = rand([2, 3, 8]);
        let mut n = norm;
        n.gamma = burn::module::Param::from_tensor(g2.clone());
        close(rms_norm(x.clone(), g2, 1e-5), n.forward(x), "burn RmsNorm");
    }

    #[test]
    fn swiglu_matches_composed_ops() {
        check([rand([3, 5, 9]), rand([3, 5, 9])], |x| swiglu(x[0].clone(), x[1].clone()), |x| silu(x[0].clone()) * x[1].clone());
    }

    #[test]
    fn rope_matches_rotate_half() {
        let (b, t, h, hd) = (2, 5, 3, 8);
        let pos = Tensor::<1, Int>::arange(0..(b * t) as i64, &dev()).reshape([b, t]);
        let inv = Tensor::<1>::from_floats([1.0, 0.3, 0.1, 0.01], &dev());
        let freqs = pos.float().reshape([b, t, 1]) * inv.reshape([1, 1, hd / 2]);
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2);
        let (cos, sin) = (emb.clone().cos().reshape([b, 1, t, hd]), emb.sin().reshape([b, 1, t, hd]));
        let (c1, s1, c2, s2) = (cos.clone(), sin.clone(), cos, sin);
        check(
            [rand([b, t, h, hd])],
            move |x| rope(x[0].clone(), c1.clone(), s1.clone()),
            move |x| crate::rope::apply_rotary(x[0].clone().swap_dims(1, 2), &c2, &s2).swap_dims(1, 2),
        );
    }

    #[test]
    fn only_f32_on_flex_is_fused_and_other_dtypes_fall_back() {
        assert!(fused_f32(&rand([2, 2])));
        assert!(fused_f32(&Tensor::<2>::zeros([2, 2], &Device::flex())));
        assert!(!fused_f32(&rand([2, 2]).cast(DType::BF16)));
        // bf16 goes through the composed ops (and agrees with f32 to bf16 precision).
        let (g, u) = (rand([3, 8]), rand([3, 8]));
        let want = swiglu(g.clone(), u.clone());
        let got = swiglu(g.cast(DType::BF16), u.cast(DType::BF16)).cast(DType::F32);
        let diff = (got - want.clone()).abs().max().into_scalar::<f32>();
        assert!(diff <= 0.02 * want.abs().max().into_scalar::<f32>().max(1.0), "bf16 swiglu off by {diff}");
        let gamma = rand([8]);
        let x = rand([3, 8]);
        let want = rms_norm(x.clone(), gamma.clone(), 1e-5);
        let got = rms_norm(x.cast(DType::BF16), gamma.cast(DType::BF16), 1e-5).cast(DType::F32);
        let diff = (got - want.clone()).abs().max().into_scalar::<f32>();
        assert!(diff <= 0.03 * want.abs().max().into_scalar::<f32>().max(1.0), "bf16 rms_norm off by {diff}");
    }
}
