import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration suites start real nats-server and node processes; give them room.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2-core machines: run files in separate forks but not too many at once.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
