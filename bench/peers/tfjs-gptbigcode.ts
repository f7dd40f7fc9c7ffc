/**
 * The benchmark peer for the training step: GPT-BigCode (StarCoder / WizardCoder) + LoRA written the way a
 * TensorFlow.js user would write it — tf ops, autodiff by `tf.variableGrads`, an explicit additive mask per
 * pack — on @tensorflow/tfjs-backend-webgpu over the same Dawn adapter as the engine (bench/peers/tfjs.ts).
 *
 * It mirrors scripts/torch_reference.py (semantics in tests/fixtures/engine/FORMAT.md) and shares no code
 * with the engine; tests/peers/tfjs-gptbigcode.test.ts checks it against the PyTorch float64 fixtures.
 *
 * One training step = forward → loss (focal on each function's last token, or next-token prediction with
 * the lm_head tied to wte) → gradients of the trainable set (LoRA A/B — on the token embedding too, target
 * wte — + score head, or every weight) →
 * global-norm clipping as torch.nn.utils.clip_grad_norm_ → AdamW as torch.optim.AdamW.
 *
 * Node note: tfjs-core's Node entry (dist/tf-core.node.js) ships no gradient functions (the union package
 * @tensorflow/tfjs normally registers them), so `registerGradients()` loads tfjs-core's own
 * dist/register_all_gradients.js once; the registry is global, so the kernels of the loaded copy serve.
 */
import { createRequire } from 'node:module';
import type * as tfjs from '@tensorflow/tfjs-core';
import { tfjsWebGpu } from './tfjs.ts';

type Tf = typeof tfjs;
type Tensor = tfjs.Tensor;

// ------------------------------------------------------------------------------------------------
// Description (the fixture JSON layout: a tests/fixtures/engine/*.json document is a valid spec)
// ------------------------------------------------------------------------------------------------

export interface PeerModelConfig {
  vocab_size: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; null/absent = 4·n_embd as in Hugging Face. */
  n_inner?: number | null;
  n_positions: number;
  multi_query: boolean;
  activation_function: 'gelu' | 'gelu_pytorch_tanh' | string;
  layer_norm_epsilon: number;
}

export interface PeerLora {
  r: number;
  alpha: number;
  /** Module suffixes: "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj". */
  targets: string[];
  dropout?: number;
}

export interface PeerFunction {
  pack: number;
  /** Index in the pack of the function's last code token (the one before its EOS). */
  last: number;
  label: number;
  weight: number;
}

export interface PeerSpec {
  config: PeerModelConfig;
  lora: PeerLora | null;
  /** "lora" (default): LoRA A/B + score.weight; "all": every tensor in `params`. */
  trainable?: 'lora' | 'all';
  objective: 'cls' | 'ntp';
  /** cls only; alpha = weight of class 1 (class 0 gets 1 − alpha), null = 1 for both. */
  focal?: { gamma: number; alpha: number | null };
  mode: 'packed' | 'paper';
  /** Hugging Face names; linears [out, in]; LoRA "<module>.lora_A.weight" [r, in], "lora_B" [out, r]. */
  params: Record<string, { shape: number[]; data: ArrayLike<number> }>;
  batch: {
    input_ids: number[][];
    segment_ids: number[][];
    position_ids: number[][];
    functions: PeerFunction[];
  };
  optimizer: {
    lr: number;
    betas: [number, number] | number[];
    eps: number;
    weight_decay: number;
    max_grad_norm: number;
  };
}

// ------------------------------------------------------------------------------------------------
// tfjs with gradients
// ------------------------------------------------------------------------------------------------

let gradientsLoaded: Promise<void> | undefined;

/** Registers tfjs-core's gradient functions (see the file comment); idempotent. */
export function registerGradients(): Promise<void> {
  gradientsLoaded ??= (async () => {
    const path = '@tensorflow/tfjs-core/dist/register_all_gradients.js';
    try {
      // Bundlers and Vitest resolve tfjs-core's extensionless ESM imports.
      await import(/* @vite-ignore */ path);
    } catch {
      // Node's ESM resolver (tsx) rejects them; tsx's require hook compiles the same files as CommonJS.
      createRequire(import.meta.url)(path);
    }
  })();
  return gradientsLoaded;
}

/** tfjs on the WebGPU backend (Dawn in Node, same adapter as the engine) with autodiff available. */
export async function tfjsWebGpuWithGradients(): Promise<Tf> {
  const tf = await tfjsWebGpu();
  await registerGradients();
  return tf;
}

// ------------------------------------------------------------------------------------------------
// The model and training step
// ------------------------------------------------------------------------------------------------

/** Additive mask value for disallowed keys: exp(−1e9 − max) is exactly 0 in float32. */
const MASKED = -1e9;
const LINEARS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

export interface PeerForward {
  /** cls: [functions, 2]; ntp: [B·L, vocab] (padding rows computed as in PyTorch, never read). */
  logits: Float32Array;
  /** Final hidden states after ln_f, [B·L, n_embd]. */
  hidden: Float32Array;
  loss: number;
}

export interface PeerGradients {
  loss: number;
  /** Gradients before clipping, per trainable name. */
  grads: Map<string, Float32Array>;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
}

export class TfjsTrainStep {
  readonly trainableNames: string[];
  /** Global gradient norm (before clipping) of the last `step()`. */
  lastGradNorm = NaN;
  /** AdamW steps taken. */
  stepCount = 0;

  private readonly weights = new Map<string, Tensor>();
  private readonly trainables = new Map<string, tfjs.Variable>();
  private readonly adamM = new Map<string, tfjs.Variable>();
  private readonly adamV = new Map<string, tfjs.Variable>();
  /** Batch tensors, fixed for the life of the step (same batch every step, as in the fixtures). */
  private readonly inputIds: Tensor;
  private readonly positionIds: Tensor;
  private readonly maskAdd: Tensor;
  private readonly maskKeep: Tensor;
  private readonly clsRows: Tensor | null = null;
  private readonly clsLabels: Tensor | null = null;
  private readonly clsAlpha: Tensor | null = null;
  private readonly clsWeights: Tensor | null = null;
  private readonly ntpRows: Tensor | null = null;
  private readonly ntpTargets: Tensor | null = null;

  private readonly B: number;
  private readonly L: number;
  private readonly D: number;
  private readonly H: number;
  private readonly hd: number;
  private readonly scaling: number;

  /** Loads tfjs (WebGPU backend, gradients registered) and builds the step. */
  static async create(spec: PeerSpec): Promise<TfjsTrainStep> {
    return new TfjsTrainStep(await tfjsWebGpuWithGradients(), spec);
  }

  /** `tf` must come from `tfjsWebGpuWithGradients()` (or have gradients registered). */
  constructor(
    private readonly tf: Tf,
    private readonly spec: PeerSpec,
  ) {
    const { config, batch } = spec;
    this.B = batch.input_ids.length;
    this.L = batch.input_ids[0].length;
    this.D = config.n_embd;
    this.H = config.n_head;
    this.hd = this.D / this.H;
    if (!Number.isInteger(this.hd)) throw new Error(`n_embd ${this.D} is not divisible by n_head ${this.H}`);
    if (!['gelu', 'gelu_pytorch_tanh'].includes(config.activation_function)) {
      throw new Error(`unsupported activation_function ${config.activation_function}`);
    }
    this.scaling = spec.lora ? spec.lora.alpha / spec.lora.r : 0;
    this.checkParams();

    const names = Object.keys(spec.params);
    const trainable = spec.trainable ?? 'lora';
    this.trainableNames =
      trainable === 'all' ? names : names.filter((n) => n.includes('.lora_') || n === 'score.weight');
    if (this.trainableNames.length === 0)
      throw new Error('nothing to train (no LoRA tensors, no score head)');
    const isTrainable = new Set(this.trainableNames);
    for (const [name, { shape, data }] of Object.entries(spec.params)) {
      const value = tf.tensor(Float32Array.from(data), shape, 'float32');
      if (isTrainable.has(name)) {
        // No variable names: tfjs's are global, and two steps may load the same model.
        this.trainables.set(name, tf.variable(value, true));
        this.adamM.set(name, tf.variable(tf.zerosLike(value), false));
        this.adamV.set(name, tf.variable(tf.zerosLike(value), false));
        value.dispose();
      } else {
        this.weights.set(name, value);
      }
    }

    // Batch: ids, positions and the [B, L, L] masks built from the segment ids.
    const { B, L } = this;
    this.inputIds = tf.tensor1d(batch.input_ids.flat(), 'int32');
    this.positionIds = tf.tensor1d(batch.position_ids.flat(), 'int32');
    const keep = new Float32Array(B * L * L);
    for (let b = 0; b < B; b++) {
      const seg = batch.segment_ids[b];
      for (let i = 0; i < L; i++) {
        if (seg[i] < 0) continue; // padding query: attends to nothing, its output is zero
        for (let j = 0; j <= i; j++) {
          const allowed = spec.mode === 'packed' ? seg[j] === seg[i] : seg[j] >= 0;
          if (allowed) keep[(b * L + i) * L + j] = 1;
        }
      }
    }
    this.maskKeep = tf.tensor3d(keep, [B, L, L]);
    this.maskAdd = tf.tensor3d(
      keep.map((k) => (k ? 0 : MASKED)),
      [B, L, L],
    );

    if (spec.objective === 'cls') {
      if (!spec.params['score.weight']) throw new Error('objective "cls" needs score.weight [2, n_embd]');
      const fns = batch.functions;
      if (fns.length === 0) throw new Error('objective "cls" needs at least one function');
      const alpha = spec.focal?.alpha ?? null;
      this.clsRows = tf.tensor1d(
        fns.map((f) => f.pack * L + f.last),
        'int32',
      );
      this.clsLabels = tf.tensor1d(
        fns.map((f) => f.label),
        'int32',
      );
      this.clsAlpha = tf.tensor1d(fns.map((f) => (alpha === null ? 1 : f.label === 1 ? alpha : 1 - alpha)));
      this.clsWeights = tf.tensor1d(fns.map((f) => f.weight));
    } else {
      // Tokens whose next token is predicted: same segment (packed) / a non-padding token (paper).
      const rows: number[] = [];
      const targets: number[] = [];
      for (let b = 0; b < B; b++) {
        const seg = batch.segment_ids[b];
        for (let t = 0; t + 1 < L; t++) {
          const ok =
            spec.mode === 'packed' ? seg[t] >= 0 && seg[t + 1] === seg[t] : seg[t] >= 0 && seg[t + 1] >= 0;
          if (ok) {
            rows.push(b * L + t);
            targets.push(batch.input_ids[b][t + 1]);
          }
        }
      }
      if (rows.length === 0) throw new Error('objective "ntp": no token has a next token in its segment');
      this.ntpRows = tf.tensor1d(rows, 'int32');
      this.ntpTargets = tf.tensor1d(targets, 'int32');
    }
  }

  /** Tokens per step (all B·L positions of the packs, padding included). */
  get tokens(): number {
    return this.B * this.L;
  }

  /** Forward only: logits, final hidden states and loss at the current parameters. */
  async forward(): Promise<PeerForward> {
    const { logits, hidden, loss } = this.tf.tidy(() => {
      const out = this.model();
      return { ...out, loss: this.lossOf(out.logits) };
    });
    const [l, h, s] = await Promise.all([logits.data(), hidden.data(), loss.data()]);
    this.tf.dispose([logits, hidden, loss]);
    return { logits: l as Float32Array, hidden: h as Float32Array, loss: s[0] };
  }

  /** Loss and gradients (before clipping) at the current parameters; parameters are not changed. */
  async gradients(): Promise<PeerGradients> {
    const tf = this.tf;
    const { loss, grads, norm } = tf.tidy(() => {
      const { value, grads } = this.lossAndGrads();
      return { loss: value, grads, norm: this.globalNorm(grads) };
    });
    const out = new Map<string, Float32Array>();
    for (const name of this.trainableNames) out.set(name, (await grads[name].data()) as Float32Array);
    const result = { loss: (await loss.data())[0], grads: out, gradNorm: (await norm.data())[0] };
    tf.dispose([loss, norm, ...Object.values(grads)]);
    return result;
  }

  /** One training step: loss, gradients, clipping, AdamW. Returns the loss before the update. */
  async step(): Promise<number> {
    const tf = this.tf;
    const { lr, betas, eps, weight_decay: wd, max_grad_norm: maxNorm } = this.spec.optimizer;
    const [beta1, beta2] = betas;
    const t = ++this.stepCount;
    const lossAndNorm = tf.tidy(() => {
      const { value, grads } = this.lossAndGrads();
      const norm = this.globalNorm(grads);
      // torch.nn.utils.clip_grad_norm_: g *= min(1, max_norm / (norm + 1e-6))
      const clip = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)));
      // torch.optim.AdamW (decoupled weight decay, bias-corrected moments)
      const stepSize = lr / (1 - beta1 ** t);
      const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
      for (const name of this.trainableNames) {
        const p = this.trainables.get(name)!;
        const m = this.adamM.get(name)!;
        const v = this.adamV.get(name)!;
        const g = tf.mul(grads[name], clip);
        const decayed = tf.mul(p, 1 - lr * wd);
        const mNew = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const vNew = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), eps);
        m.assign(mNew);
        v.assign(vNew);
        p.assign(tf.sub(decayed, tf.mul(tf.div(mNew, denom), stepSize)));
      }
      return tf.stack([value, norm]);
    });
    const [loss, norm] = await lossAndNorm.data();
    lossAndNorm.dispose();
    this.lastGradNorm = norm;
    return loss;
  }

  /** Current values of the trainable tensors (default: all of them). */
  async read(names: string[] = this.trainableNames): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const name of names) {
      const tensor = this.trainables.get(name) ?? this.weights.get(name);
      if (!tensor) throw new Error(`no parameter ${name}`);
      out.set(name, (await tensor.data()) as Float32Array);
    }
    return out;
  }

  dispose(): void {
    const tensors = [
      ...this.weights.values(),
      ...this.trainables.values(),
      ...this.adamM.values(),
      ...this.adamV.values(),
      this.inputIds,
      this.positionIds,
      this.maskAdd,
      this.maskKeep,
    ];
    for (const t of [
      this.clsRows,
      this.clsLabels,
      this.clsAlpha,
      this.clsWeights,
      this.ntpRows,
      this.ntpTargets,
    ]) {
      if (t) tensors.push(t);
    }
    this.tf.dispose(tensors);
  }

  // ----------------------------------------------------------------------------------------------
  // Internals (all called inside tf.tidy / tf.variableGrads)
  // ----------------------------------------------------------------------------------------------

  private checkParams(): void {
    const { config, lora, params } = this.spec;
    const need = [
      'transformer.wte.weight',
      'transformer.wpe.weight',
      'transformer.ln_f.weight',
      'transformer.ln_f.bias',
    ];
    for (let layer = 0; layer < config.n_layer; layer++) {
      const pre = `transformer.h.${layer}.`;
      for (const ln of ['ln_1', 'ln_2']) need.push(`${pre}${ln}.weight`, `${pre}${ln}.bias`);
      for (const module of LINEARS) {
        need.push(`${pre}${module}.weight`, `${pre}${module}.bias`);
        if (lora?.targets.includes(module))
          need.push(`${pre}${module}.lora_A.weight`, `${pre}${module}.lora_B.weight`);
      }
    }
    if (lora?.targets.includes('wte'))
      need.push('transformer.wte.lora_embedding_A', 'transformer.wte.lora_embedding_B');
    const missing = need.filter((n) => !params[n]);
    if (missing.length)
      throw new Error(
        `missing parameters: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? '…' : ''}`,
      );
  }

  private param(name: string): Tensor {
    const t = this.trainables.get(name) ?? this.weights.get(name);
    if (!t) throw new Error(`no parameter ${name}`);
    return t;
  }

  private lossAndGrads(): { value: tfjs.Scalar; grads: tfjs.NamedTensorMap } {
    const names = this.trainableNames;
    const vars = names.map((n) => this.trainables.get(n)!);
    const { value, grads } = this.tf.variableGrads(() => this.lossOf(this.model().logits), vars);
    const byName: tfjs.NamedTensorMap = {};
    names.forEach((n, i) => (byName[n] = grads[vars[i].name]));
    return { value, grads: byName };
  }

  private globalNorm(grads: tfjs.NamedTensorMap): tfjs.Scalar {
    const tf = this.tf;
    // One concat rather than tf.addN: WebGPU's AddN binds every input, over the 8 storage buffers per stage
    // that lavapipe allows.
    return tf.sqrt(
      tf.sum(tf.concat(this.trainableNames.map((n) => tf.reshape(tf.sum(tf.square(grads[n])), [1])))),
    );
  }

  /** y = x·Wᵀ + b (+ (alpha/r)·(x·Aᵀ)·Bᵀ when the module has LoRA weights). x: [T, in]. */
  private linear(x: Tensor, name: string): Tensor {
    const tf = this.tf;
    let y = tf.add(tf.matMul(x, this.param(`${name}.weight`), false, true), this.param(`${name}.bias`));
    const a = this.trainables.get(`${name}.lora_A.weight`) ?? this.weights.get(`${name}.lora_A.weight`);
    if (a) {
      const low = tf.matMul(x, a, false, true);
      y = tf.add(y, tf.mul(tf.matMul(low, this.param(`${name}.lora_B.weight`), false, true), this.scaling));
    }
    return y;
  }

  private layerNorm(x: Tensor, name: string): Tensor {
    const tf = this.tf;
    const mean = tf.mean(x, -1, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), -1, true); // biased, as torch
    const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, this.spec.config.layer_norm_epsilon)));
    return tf.add(tf.mul(normed, this.param(`${name}.weight`)), this.param(`${name}.bias`));
  }

  private activation(x: Tensor): Tensor {
    const tf = this.tf;
    if (this.spec.config.activation_function === 'gelu') {
      // Exact GELU, 0.5·x·(1 + erf(x/√2)). tfjs's erf (Abramowitz–Stegun 7.1.26, |error| ≤ 1.5e-7) is as
      // accurate as float32 allows here; its gradient is the exact 2/√π·exp(−x²).
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
    }
    // gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
  }

  /** Self-attention of one block on x [B·L, D]; returns c_proj's output [B·L, D]. */
  private attention(x: Tensor, pre: string): Tensor {
    const tf = this.tf;
    const { B, L, D, H, hd } = this;
    const T = B * L;
    const qkv = this.linear(x, `${pre}attn.c_attn`);
    const scale = 1 / Math.sqrt(hd);
    let out: Tensor;
    if (this.spec.config.multi_query) {
      // rows of c_attn: [Q for all heads (D) | one K head (hd) | one V head (hd)]. As Hugging Face does for
      // MQA, fold the heads into the query rows: q [B, L·H, hd] against the shared k, v [B, L, hd].
      const q = tf.reshape(tf.slice(qkv, [0, 0], [T, D]), [B, L * H, hd]);
      const k = tf.reshape(tf.slice(qkv, [0, D], [T, hd]), [B, L, hd]);
      const v = tf.reshape(tf.slice(qkv, [0, D + hd], [T, hd]), [B, L, hd]);
      const scores = tf.reshape(tf.mul(tf.matMul(q, k, false, true), scale), [B, L, H, L]);
      const masked = tf.add(scores, tf.reshape(this.maskAdd, [B, L, 1, L]));
      const probs = tf.mul(tf.softmax(masked), tf.reshape(this.maskKeep, [B, L, 1, L]));
      out = tf.reshape(tf.matMul(tf.reshape(probs, [B, L * H, L]), v), [T, D]);
    } else {
      // Hugging Face's multi-head layout: the c_attn output viewed as [B, L, H, 3, hd].
      const [q, k, v] = tf
        .split(tf.reshape(qkv, [B, L, H, 3, hd]), 3, 3)
        .map((t) => tf.reshape(tf.transpose(tf.reshape(t, [B, L, H, hd]), [0, 2, 1, 3]), [B * H, L, hd]));
      const scores = tf.reshape(tf.mul(tf.matMul(q, k, false, true), scale), [B, H, L, L]);
      const masked = tf.add(scores, tf.reshape(this.maskAdd, [B, 1, L, L]));
      const probs = tf.mul(tf.softmax(masked), tf.reshape(this.maskKeep, [B, 1, L, L]));
      const heads = tf.reshape(tf.matMul(tf.reshape(probs, [B * H, L, L]), v), [B, H, L, hd]);
      out = tf.reshape(tf.transpose(heads, [0, 2, 1, 3]), [T, D]);
    }
    return this.linear(out, `${pre}attn.c_proj`);
  }

  /** GPTBigCodeModel forward + head: final hidden states [B·L, D] and logits. */
  private model(): { hidden: Tensor; logits: Tensor } {
    const tf = this.tf;
    const wte = this.param('transformer.wte.weight');
    let x = tf.add(
      tf.gather(wte, this.inputIds),
      tf.gather(this.param('transformer.wpe.weight'), this.positionIds),
    );
    if (this.spec.lora?.targets.includes('wte')) {
      // PEFT's LoRA Embedding: + (alpha/r)·A[:, ids]ᵀ·Bᵀ, A [r, V], B [D, r]
      const a = this.param('transformer.wte.lora_embedding_A');
      const low = tf.gather(tf.transpose(a), this.inputIds); // [B·L, r]
      const b = this.param('transformer.wte.lora_embedding_B');
      x = tf.add(x, tf.mul(tf.matMul(low, b, false, true), this.scaling));
    }
    for (let layer = 0; layer < this.spec.config.n_layer; layer++) {
      const pre = `transformer.h.${layer}.`;
      x = tf.add(x, this.attention(this.layerNorm(x, `${pre}ln_1`), pre));
      const h = this.linear(this.layerNorm(x, `${pre}ln_2`), `${pre}mlp.c_fc`);
      x = tf.add(x, this.linear(this.activation(h), `${pre}mlp.c_proj`));
    }
    const hidden = this.layerNorm(x, 'transformer.ln_f');
    const logits =
      this.spec.objective === 'cls'
        ? tf.matMul(tf.gather(hidden, this.clsRows!), this.param('score.weight'), false, true) // [F, 2]
        : tf.matMul(hidden, wte, false, true); // lm_head tied to wte, [B·L, V]
    return { hidden, logits };
  }

  private lossOf(logits: Tensor): tfjs.Scalar {
    const tf = this.tf;
    if (this.spec.objective === 'cls') {
      // focal: mean over functions of weight · −α_t (1 − p_t)^γ log p_t
      const gamma = this.spec.focal?.gamma ?? 0;
      const logpT = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(this.clsLabels!, 2)), 1);
      const modulating = gamma === 0 ? tf.onesLike(logpT) : tf.pow(tf.sub(1, tf.exp(logpT)), gamma);
      const focal = tf.neg(tf.mul(tf.mul(this.clsAlpha!, modulating), logpT));
      return tf.mean(tf.mul(this.clsWeights!, focal));
    }
    // ntp: mean cross-entropy over the predicted tokens
    const logp = tf.logSoftmax(tf.gather(logits, this.ntpRows!));
    const vocab = this.spec.config.vocab_size;
    return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(this.ntpTargets!, vocab)), 1)));
  }
}
