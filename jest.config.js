// ESM project: jest runs with --experimental-vm-modules and ts-jest in ESM mode.
// Imports are written with a .js suffix (NodeNext); the mapper points them at the .ts sources.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/test/e2e/'],
  testTimeout: 20000,
};
