// GELU over a flat f32 buffer, as torch.nn.functional.gelu:
//   APPROX = 0 ("gelu"):              y = x·Φ(x) = 0.5·x·(1 + erf(x/√2))
//   APPROX = 1 ("gelu_pytorch_tanh"): y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
// Entry points: forward (Y = gelu(X)), backward (dX = dY·gelu'(X)), backward_inplace (G = G·gelu'(X),
// G holding dY on entry). Formulas follow PyTorch's GeluKernel (CPU/CUDA) term by term.
// WGSL has no erf: erf_f32 is a float32 minimax approximation (max abs error < 1e-7 over all x, two
// branches: odd polynomial for |x| ≤ 0.9277, 1 − exp(poly) above). Inputs of tanh/exp are clamped where
// the function has saturated in f32, so huge |x| give the limit instead of Inf/NaN.

// #include "lib/workgroup"

override APPROX: u32 = 0u;

struct Params {
  n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

@group(0) @binding(2) var<storage, read> dY: array<f32>;
@group(0) @binding(3) var<storage, read_write> dX: array<f32>;

@group(0) @binding(2) var<storage, read_write> G: array<f32>;

const WG: u32 = 256u;
const SQRT1_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268; // 1/√(2π)
const SQRT_2_PI: f32 = 0.79788456080286536; // √(2/π)
const KAPPA: f32 = 0.044715;

fn erf_f32(a: f32) -> f32 {
  let t = min(abs(a), 10.0); // erf(x) rounds to ±1 in f32 beyond |x| ≈ 3.92
  let s = t * t;
  if (t > 0.927734375) {
    var r = fma(-1.72853470e-5, t, 3.83197126e-4);
    let u = fma(-3.88396438e-3, t, 2.42546219e-2);
    r = fma(r, s, u);
    r = fma(r, t, -1.06777877e-1);
    r = fma(r, t, -6.34846687e-1);
    r = fma(r, t, -1.28717512e-1);
    r = fma(r, t, -t);
    return select(1.0 - exp(r), exp(r) - 1.0, a < 0.0);
  }
  var r = -5.96761703e-4;
  r = fma(r, s, 4.99119423e-3);
  r = fma(r, s, -2.67681349e-2);
  r = fma(r, s, 1.12819925e-1);
  r = fma(r, s, -3.76125336e-1);
  r = fma(r, s, 1.28379166e-1);
  return fma(r, a, a);
}

fn tanh_inner(x: f32) -> f32 {
  let xc = clamp(x, -10.0, 10.0);
  // tanh is exactly ±1 in f32 beyond |u| ≈ 9.01; 15 keeps exp-based tanh implementations far from overflow.
  return tanh(clamp(SQRT_2_PI * (xc + KAPPA * xc * xc * xc), -15.0, 15.0));
}

fn gelu(x: f32) -> f32 {
  if (APPROX == 0u) {
    return 0.5 * x * (1.0 + erf_f32(x * SQRT1_2));
  }
  return 0.5 * x * (1.0 + tanh_inner(x));
}

fn gelu_grad(x: f32) -> f32 {
  let xc = clamp(x, -20.0, 20.0);
  if (APPROX == 0u) {
    let cdf = 0.5 * (1.0 + erf_f32(x * SQRT1_2));
    let pdf = exp(-0.5 * xc * xc) * INV_SQRT_2PI;
    return cdf + xc * pdf;
  }
  let th = tanh_inner(x);
  let left_derivative = 0.5 * (1.0 + th);
  let right_derivative = 0.5 * xc * (1.0 - th * th) * SQRT_2_PI * (1.0 + 3.0 * KAPPA * xc * xc);
  return left_derivative + right_derivative;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  Y[i] = gelu(X[i]);
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  dX[i] = dY[i] * gelu_grad(X[i]);
}

@compute @workgroup_size(WG)
fn backward_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  G[i] = G[i] * gelu_grad(X[i]);
}

// Y = erf(X): exposes erf_f32 itself (tests measure its accuracy directly).
@compute @workgroup_size(WG)
fn erf_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  Y[i] = erf_f32(X[i]);
}
