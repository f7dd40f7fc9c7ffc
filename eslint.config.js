import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';

/** `forbidden` globs with one message, and `extra` patterns ({ group } or { regex }) with their own. */
const layer = (files, forbidden, message, extra = []) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: [...forbidden.map((group) => ({ group: [group], message })), ...extra] },
    ],
  },
});

const ABOVE_IO = ['**/train/**', '**/worker/**', '**/cli/**', '**/ui/**', 'react*'];
const ABOVE_TRAIN = ['**/worker/**', '**/cli/**', '**/ui/**', 'react*'];

/**
 * src/train and src/cli take the engine from its public surface, src/engine/index.ts, and the
 * platform entry points gpu/node.ts and gpu/browser.ts; never from its inner modules.
 */
const ENGINE_SURFACE = {
  regex: String.raw`(^|/)engine/(?!(index|gpu/node|gpu/browser)(\.ts)?$)`,
  message:
    'import the engine from src/engine/index.ts (its public surface), and the RNG, error base and batch types from src/shared',
};

/**
 * Files of src/train that import inner engine modules all the same: the page-safe and ONNX modules
 * (bundled by the page and the ONNX scan worker, which hold no GPU model: they take the engine's
 * plain-arithmetic modules directly), and files not yet moved to the surface (docs/ARCHITECTURE.md).
 */
const ENGINE_DEEP_ALLOWED = ['src/train/config.ts', 'src/train/onnx/**'];

// Modules of the layers below the UI that the page may bundle (no GPU, kernel, shader or loader in them).
const PAGE_SAFE = [
  'engine/errors.ts',
  'engine/quant.ts',
  'engine/model/config.ts',
  'engine/model/memory-plan.ts',
  'engine/model/sizes.ts',
  'io/errors.ts',
  'io/config.ts',
  'io/presets.ts',
  'train/config.ts',
];

/** Restricts value imports from `layer` to its PAGE_SAFE modules. */
const pageSafeOnly = (layer, message) => {
  const allowed = PAGE_SAFE.filter((m) => m.startsWith(`${layer}/`)).map((m) =>
    m.slice(layer.length + 1, -'.ts'.length).replace(/\./g, '\\.'),
  );
  return { regex: `(^|/)${layer}/(?!(${allowed.join('|')})(\\.ts)?$)`, allowTypeImports: true, message };
};

export default tseslint.config(
  { ignores: ['dist', 'node_modules', 'test-results', 'bench/results', 'public'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['src/ui/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  // One direction of dependency: shared <- engine <- io/data <- train <- worker/cli <- ui
  // (docs/ARCHITECTURE.md). src/shared sits under every layer and imports none of them.
  layer(
    ['src/shared/**'],
    ['**/engine/**', '**/io/**', '**/data/**', ...ABOVE_IO, '@webgpu/*', 'webgpu'],
    'src/shared is plain data and arithmetic that every layer may import: it imports no layer',
  ),
  layer(
    ['src/engine/**'],
    ['**/io/**', '**/data/**', ...ABOVE_IO],
    'the engine depends on nothing above it (only on src/shared)',
  ),
  // The data layer needs nothing of the engine: the RNG and the error base come from src/shared.
  layer(['src/data/**'], ['**/engine/**', '**/io/**', ...ABOVE_IO], 'data depends only on src/shared'),
  // Model IO builds on the engine's model description (config, sizes, memory plan, weight formats)
  // and uploads onto its GPU model; the RNG and the error base come from src/shared.
  layer(['src/io/**'], ['**/data/**', ...ABOVE_IO], 'io depends only on src/shared and the engine', [
    {
      group: ['**/engine/random*', '**/engine/errors*', '**/engine/kernels/**', '**/engine/reference/**'],
      message:
        'io takes the RNG and the error base from src/shared, and no kernels or references from the engine',
    },
  ]),
  layer(['src/train/**'], ABOVE_TRAIN, 'train depends on engine, io and data', [ENGINE_SURFACE]),
  layer(ENGINE_DEEP_ALLOWED, ABOVE_TRAIN, 'train depends on engine, io and data'),
  layer(['src/cli/**'], ['**/ui/**', 'react*'], 'worker and cli sit below the UI', [ENGINE_SURFACE]),
  layer(['src/worker/**'], ['**/ui/**', 'react*'], 'worker and cli sit below the UI'),
  // The page's bundle holds no engine: the UI talks to the worker, and from the layers below it takes
  // values only from the page-safe modules (plain data and arithmetic); type-only imports are erased.
  // Those modules import no GPU, kernel, shader or loader code. tests/build/main-chunk.test.ts checks
  // the built page chunk for what lint cannot follow (imports through other modules).
  {
    files: ['src/ui/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            pageSafeOnly('engine', 'the UI holds no engine code (GPU, kernels, model); talk to the worker'),
            pageSafeOnly(
              'io',
              "loading models is the worker's job; the UI takes presets, config and errors from io",
            ),
            pageSafeOnly('train', 'training runs in the worker; the UI takes the run config from train'),
            {
              regex: String.raw`(^|/)worker/(?!(client|onnx-scan-client)(\.ts)?$)`,
              allowTypeImports: true,
              message: 'the UI reaches the workers through their clients',
            },
          ],
        },
      ],
    },
  },
  {
    files: PAGE_SAFE.map((m) => `src/${m}`),
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: String.raw`(^|/)(gpu|kernels|reference)/|(^|/)(index|gpt-bigcode|optimizer|golden|load|load-gpu|gguf|pickle|zip|torch-bin|tokenizer|safetensors|hub)(\.ts)?$|\.wgsl|^@huggingface/|^onnxruntime|^fflate$`,
              allowTypeImports: true,
              message:
                'the page bundles this module: plain data and arithmetic, no GPU, kernel, shader or loader',
            },
          ],
        },
      ],
    },
  },
);
