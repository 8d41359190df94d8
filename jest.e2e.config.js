// End-to-end tests against real control-plane binaries (test/e2e). Same ESM/ts-jest setup as
// jest.config.js; one file at a time, since each starts its own control plane on loopback.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  testMatch: ['<rootDir>/test/e2e/**/*.e2e.test.ts'],
  maxWorkers: 1,
  testTimeout: 180_000,
  verbose: true,
};
