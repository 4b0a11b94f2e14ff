// Jest runs TypeScript through @swc/jest (ts-jest cannot load the ESM-only @nestjs 12 packages on Node 20);
// types are checked separately by `tsc --noEmit`.
const fs = require('node:fs');

const swcConfig = JSON.parse(fs.readFileSync(`${__dirname}/.swcrc`, 'utf8'));
delete swcConfig.$schema;

const shared = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j)s$': ['@swc/jest', { ...swcConfig, swcrc: false }] },
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs)/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  // One line per lib alias, as in tsconfig.json's `paths`.
  moduleNameMapper: {
    '^@app/monitoring$': '<rootDir>/libs/monitoring/src',
    '^@app/safety$': '<rootDir>/libs/safety/src',
    '^@app/rate-limit$': '<rootDir>/libs/rate-limit/src',
    '^@app/gpu$': '<rootDir>/libs/gpu/src',
    '^@app/config-files$': '<rootDir>/libs/config-files/src',
  },
};

module.exports = {
  // A project's own testTimeout is ignored by Jest 30: this one holds for both (the e2e suites start servers
  // and child processes; their polling ceilings are 15 s).
  testTimeout: 60000,
  projects: [
    {
      ...shared,
      displayName: 'unit',
      testMatch: ['<rootDir>/apps/**/src/**/*.spec.ts', '<rootDir>/libs/**/src/**/*.spec.ts'],
    },
    {
      ...shared,
      displayName: 'e2e',
      testMatch: ['<rootDir>/apps/**/test/**/*.e2e-spec.ts'],
    },
  ],
};
