// Jest: TypeScript tests compiled to CommonJS by ts-jest; one process (the native core uses all cores).
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'test/tsconfig.json' }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 120000,
  setupFilesAfterEnv: ['<rootDir>/test/helpers/setup.ts'],
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
};
