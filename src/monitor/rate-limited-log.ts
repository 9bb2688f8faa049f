import type { FastifyBaseLogger } from 'fastify';

/**
 * At most `perMinute` lines a minute, warnings and errors together; the ones held back are
 * counted and reported with the next one that gets through, so a flood of outliers or of feature
 * log failures is visible without flooding the log.
 */
export class RateLimitedWarn {
  private windowStart = 0;
  private sent = 0;
  private suppressed = 0;

  constructor(
    private readonly log: FastifyBaseLogger,
    private readonly perMinute: number,
  ) {}

  warn(fields: Record<string, unknown>, msg: string, now = Date.now()): void {
    this.write('warn', fields, msg, now);
  }

  error(fields: Record<string, unknown>, msg: string, now = Date.now()): void {
    this.write('error', fields, msg, now);
  }

  private write(level: 'warn' | 'error', fields: Record<string, unknown>, msg: string, now: number): void {
    if (now - this.windowStart >= 60_000) {
      this.windowStart = now;
      this.sent = 0;
    }
    if (this.sent >= this.perMinute) {
      this.suppressed++;
      return;
    }
    this.sent++;
    this.log[level]({ ...fields, suppressedSinceLast: this.suppressed }, msg);
    this.suppressed = 0;
  }
}
