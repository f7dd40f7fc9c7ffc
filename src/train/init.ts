/**
 * Initial values of the trainable tensors a pretrained checkpoint does not have, as PEFT and
 * transformers initialise them: LoRA A ~ kaiming-uniform(a = √5) = U(±1/√in), LoRA B = 0 (so the
 * adapted model starts equal to the base model); the embedding's adapter the other way round
 * (PEFT: `lora_embedding_A` = 0, `lora_embedding_B` ~ N(0, 1)); the score head ~ N(0, 0.02).
 */
import { describeDecoder, type LoraConfig, loraParamSpecs, type ModelConfig } from '../engine/index.ts';
import { Rng } from '../shared/random.ts';

export function initialTrainables(
  config: ModelConfig,
  lora: LoraConfig | null,
  withScore: boolean,
  seed: number,
): Map<string, Float32Array> {
  const rng = new Rng(seed ^ 0x5eed1e55);
  const values = new Map<string, Float32Array>();
  for (const spec of lora ? loraParamSpecs(config, lora) : []) {
    const [rows, cols] = spec.shape;
    const data = new Float32Array(rows * cols);
    if (spec.kind === 'lora-A') {
      const bound = 1 / Math.sqrt(cols);
      for (let i = 0; i < data.length; i++) data[i] = (rng.next() * 2 - 1) * bound;
    } else if (spec.kind === 'lora-embedding-B') {
      for (let i = 0; i < data.length; i++) data[i] = rng.normal();
    }
    values.set(spec.name, data);
  }
  if (withScore) {
    const d = describeDecoder(config);
    const score = new Float32Array(2 * d.width);
    for (let i = 0; i < score.length; i++) score[i] = 0.02 * rng.normal();
    values.set(d.score, score);
  }
  return values;
}
