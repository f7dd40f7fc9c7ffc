/** A run's config as a shareable URL: only the fields that differ from the paper's defaults, in the hash. */
import { defaultConfig, FIELDS, getField, resolveConfig, type RunConfig } from '../train/config.ts';

function setPath(object: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = object;
  for (const key of keys.slice(0, -1)) {
    if (!node[key] || typeof node[key] !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

/** The fields of `config` that differ from the defaults, as a nested partial config. */
export function configDiff(config: RunConfig): Record<string, unknown> {
  const defaults = defaultConfig();
  const diff: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const value = getField(config, field.path);
    if (JSON.stringify(value) !== JSON.stringify(getField(defaults, field.path))) {
      setPath(diff, field.path, value);
    }
  }
  return diff;
}

export function configUrl(
  config: RunConfig,
  base = window.location.origin + window.location.pathname,
): string {
  const url = new URL(base);
  url.hash = `config=${encodeURIComponent(JSON.stringify(configDiff(config)))}`;
  return url.toString();
}

/** The config in a `#config=` hash, validated; undefined when there is none; throws ConfigError when wrong. */
export function configFromHash(hash: string): RunConfig | undefined {
  const match = /(?:^#|&)config=([^&]*)/.exec(hash);
  if (!match) return undefined;
  let partial: unknown;
  try {
    partial = JSON.parse(decodeURIComponent(match[1]));
  } catch {
    partial = null;
  }
  return resolveConfig(partial);
}

/** Deep merge of plain objects (arrays and scalars replace). */
export function deepMerge<T>(base: T, patch: unknown): T {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return base;
  const out = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(patch)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? deepMerge(current, value)
        : value;
  }
  return out as T;
}
