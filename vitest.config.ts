import { defineConfig } from 'vitest/config';

// VHOSTSIM_TEST_JSON=<file> also writes vitest's JSON report there (used by .ci/run).
const json = process.env.VHOSTSIM_TEST_JSON;

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'scenarios/**/*.test.ts'],
    pool: 'threads',
    reporters: json ? ['default', ['json', { outputFile: json }]] : ['default'],
  },
});
