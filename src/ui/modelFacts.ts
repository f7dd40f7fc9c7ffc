/** A model's architecture facts as the panels show them (no React): from any family's config. */
import { modelFacts, type ModelConfig, type ModelFacts } from '../io/presets.ts';
import { formatCount, formatValue } from './format.ts';

/** The facts, or undefined for a config the engine cannot describe. */
export function factsOf(config: ModelConfig | undefined): ModelFacts | undefined {
  if (!config) return undefined;
  try {
    return modelFacts(config);
  } catch {
    return undefined;
  }
}

/** "GQA", "MQA" or "MHA" from the query and K/V heads. */
export function attentionKind(facts: Pick<ModelFacts, 'heads' | 'kvHeads'>): 'MQA' | 'GQA' | 'MHA' {
  if (facts.kvHeads === 1 && facts.heads > 1) return 'MQA';
  return facts.kvHeads < facts.heads ? 'GQA' : 'MHA';
}

/**
 * The facts that matter for fitting and finetuning, in one line: "24 layers · width 896 · 14 heads /
 * 2 KV (GQA) · context 32,768 · tied head · SwiGLU · RoPE θ 1e+6".
 */
export function architectureSummary(facts: ModelFacts): string {
  const parts = [
    `${facts.layers} layers`,
    `width ${facts.width}`,
    `${facts.heads} heads / ${facts.kvHeads} KV (${attentionKind(facts)})`,
    `context ${facts.context.toLocaleString('en-US')}`,
    facts.tiedHead ? 'tied head' : 'own LM head',
    facts.mlp === 'swiglu' ? 'SwiGLU' : 'GELU MLP',
  ];
  if (facts.rope) {
    const scaling = facts.rope.scaling !== 1 ? ` ×${facts.rope.scaling} linear` : '';
    parts.push(`RoPE θ ${formatValue(facts.rope.theta)}${scaling}`);
  } else parts.push('learned positions');
  if (facts.slidingWindow !== null) parts.push(`window ${facts.slidingWindow.toLocaleString('en-US')}`);
  return parts.join(' · ');
}

/** "Qwen2, 494.0M parameters" */
export function familyAndSize(facts: ModelFacts): string {
  return `${facts.familyLabel}, ${formatCount(facts.parameters)} parameters`;
}
