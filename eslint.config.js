import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';

const layer = (files, forbidden, message) => ({
  files,
  rules: {
    'no-restricted-imports': ['error', { patterns: forbidden.map((group) => ({ group: [group], message })) }],
  },
});

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
  // One direction of dependency: engine <- io/data <- train <- worker/cli <- ui.
  layer(
    ['src/engine/**'],
    ['**/io/**', '**/data/**', '**/train/**', '**/worker/**', '**/cli/**', '**/ui/**', 'react*'],
    'the engine depends on nothing above it',
  ),
  layer(
    ['src/io/**', 'src/data/**'],
    ['**/train/**', '**/worker/**', '**/cli/**', '**/ui/**', 'react*'],
    'io/data depend only on the engine',
  ),
  layer(
    ['src/train/**'],
    ['**/worker/**', '**/cli/**', '**/ui/**', 'react*'],
    'train depends on engine, io and data',
  ),
  layer(['src/worker/**', 'src/cli/**'], ['**/ui/**', 'react*'], 'worker and cli sit below the UI'),
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
