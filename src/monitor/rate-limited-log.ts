import type { FastifyBaseLogger } from 'fastify';

/**
 * At most `perMinute` warnings a minute; the ones held back are counted and reported with the
 * next one that gets through, so a flood of outliers is visible without flooding the log.
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
    if (now - this.windowStart >= 60_000) {
      this.windowStart = now;
      this.sent = 0;
    }
    if (this.sent >= this.perMinute) {
      this.suppressed++;
      return;
    }
    this.sent++;
    this.log.warn({ ...fields, suppressedSinceLast: this.suppressed }, msg);
    this.suppressed = 0;
  }
}
