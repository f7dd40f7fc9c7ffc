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
  layer(
    ['src/ui/**'],
    ['**/engine/gpu/*', '**/engine/kernels/*'],
    'the UI holds no GPU code; talk to the worker',
  ),
);
