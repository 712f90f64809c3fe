// ESLint for Warren: typescript-eslint's type-aware rules for promises (a
// floating or misused promise is how an ack, a commit or an error goes
// missing), on top of its recommended set. Formatting is Prettier's.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Warren is TypeScript; scripts/*.js are small CommonJS helpers for the shell scripts.
  { ignores: ['dist/', 'node_modules/', '.bench-baseline/', 'coverage/', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Tests may pass promises to chai and sinon as they see fit.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
);
