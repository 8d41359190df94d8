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
      // `(e) => this.onEvent(e)` passes a callback; only a void value used as a value is flagged.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // @kubernetes/client-node's models are classes of data fields only, built and spread as plain
      // objects (as its own examples do): nothing on their prototypes is lost.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      '@typescript-eslint/no-misused-spread': 'off',
    },
  },
  prettier,
);
