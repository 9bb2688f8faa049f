// The log lines a flood of feature-log failures or outliers may write: at most N a minute, the
// held-back ones counted on the next line that gets through.
import type { FastifyBaseLogger } from 'fastify';
import t from 'tap';
import { RateLimitedWarn } from '../src/monitor/rate-limited-log.js';

t.test('at most perMinute lines a minute, warnings and errors together; the next line after counts those held back', async (t) => {
  const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const record = (level: string) => (fields: Record<string, unknown>, msg: string) => lines.push({ level, fields, msg });
  const log = { warn: record('warn'), error: record('error') } as unknown as FastifyBaseLogger;
  const limited = new RateLimitedWarn(log, 10);
  const start = 1_000_000;
  // 25 failures in the first 50 s, alternating levels.
  for (let i = 0; i < 25; i++) (i % 2 === 0 ? limited.error.bind(limited) : limited.warn.bind(limited))({ i }, `failure ${i}`, start + i * 2000);
  t.equal(lines.length, 10, 'ten lines in the minute');
  t.same(lines.map((l) => l.fields.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the first ten');
  t.same(lines.map((l) => l.level).slice(0, 2), ['error', 'warn'], 'each at its own level');
  t.ok(lines.every((l) => l.fields.suppressedSinceLast === 0), 'none held back before them');
  limited.error({ i: 25 }, 'failure 25', start + 60_000);
  t.same(lines.at(-1), { level: 'error', fields: { i: 25, suppressedSinceLast: 15 }, msg: 'failure 25' }, 'a new minute: the line says 15 were held back');
  limited.error({ i: 26 }, 'failure 26', start + 61_000);
  t.equal(lines.at(-1)!.fields.suppressedSinceLast, 0, 'and the count starts again');
});
