// ESLint flat config: typescript-eslint's strict type-checked rules over every TypeScript file that
// tsconfig.json compiles; formatting is Prettier's alone (eslint-config-prettier, last).
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // What .gitignore lists: build output, coverage, the e2e binaries' cache.
  { ignores: ['dist/', 'coverage/', '.hiatus/', 'benchmarks/goodput/out/'] },
  eslint.configs.recommended,
  tseslint.configs.strictTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // The root *.js configs are outside tsconfig.json; they get a default project.
        projectService: { allowDefaultProject: ['*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // tsconfig.json has noUncheckedIndexedAccess: `xs[i]!` states an index known to be in range;
      // no-unnecessary-type-assertion still catches a `!` that changes nothing.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Counts, ports and durations go into messages as they are; objects and unions are still refused.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `s || fallback` treats an empty string as absent, as Kubernetes does its string fields.
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignorePrimitives: { string: true } }],
      // `(e) => this.onEvent(e)` passes a callback, and `return done(x)` ends a function typed void
      // early; a void value used as a value is still flagged.
      '@typescript-eslint/no-confusing-void-expression': [
        'error',
        { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true },
      ],
      // As tsc's noUnusedParameters: `_` marks a parameter kept for its position; `{ a: _, ...rest }` drops a key.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // No-op implementations of an interface (a silent logger, a view with nothing to stop) are empty on purpose.
      '@typescript-eslint/no-empty-function': 'off',
      // @kubernetes/client-node's models are classes of data fields only, built and spread as plain
      // objects (as its own examples do): nothing on their prototypes is lost.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      '@typescript-eslint/no-misused-spread': 'off',
    },
  },
  {
    files: ['test/**', 'testing/**'],
    rules: {
      // Test doubles implement async interfaces; an async function with nothing to await is the plainest fake.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['test/**'],
    rules: {
      // afterAll guards what a beforeAll that failed left unset, and manifests may hold empty YAML
      // documents: the types call both certain.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // Tests assert on parsed JSON and YAML as it comes: a wrong shape fails the assertion that reads it.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  prettier,
);
