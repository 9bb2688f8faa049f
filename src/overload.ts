import type { IncomingHttpHeaders } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import type { ServeConfig } from './config.js';
import { OverloadedError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route answers however loaded the server is: scrapes and probes are how an operator sees
     * the overload, and a probe that fails under load gets a busy replica restarted, not relieved.
     */
    answersUnderPressure?: boolean;
  }
  interface FastifyInstance {
    overload: OverloadGuard;
  }
}

export interface OverloadGuard {
  /** Longest event-loop stall in the last whole second, ms; 0 until a second has passed since start-up. */
  readonly delayMs: number;
  /** Requests admitted to routes not marked answersUnderPressure and not answered yet (counted while the bound is on). */
  readonly inFlight: number;
  /** Which bound the next request would be shed for, in words; undefined while requests are admitted. */
  readonly pressure: string | undefined;
  readonly shedding: boolean;
}

const SAMPLE_INTERVAL_MS = 1000;
const RESOLUTION_MS = 10;
/** The delay is re-measured every second, so that is when a shed client may try again. */
const RETRY_AFTER_SECONDS = SAMPLE_INTERVAL_MS / 1000;

/**
 * On a kept-alive connection Node reads a shed request's whole body, only to throw it away: in the
 * storm of bench/storm.ts (180 KiB batches) that was over 500 MB a second. Closing the connection
 * lets the kernel drop the body unread. Small bodies are still read: closing every shed connection
 * made the one-row probes of that storm 4 to 7 s late, the times at which dropped SYNs are retried.
 */
const DRAIN_AT_MOST_BYTES = 64 * 1024;
export const costlyToDrain = (headers: IncomingHttpHeaders) =>
  headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > DRAIN_AT_MOST_BYTES;

type Bounds = Pick<ServeConfig, 'maxEventLoopDelayMs' | 'maxRequestsInFlight'>;

/**
 * Every route not marked answersUnderPressure answers 503 with Retry-After, before its body is
 * read, while either bound is exceeded (0 turns a bound off):
 *
 * - the longest event-loop stall of the last second is above maxEventLoopDelayMs. The longest,
 *   not the mean of the 10 ms samples (what @fastify/under-pressure computes): a loop blocked for
 *   a second in one piece yields one sample of 1000 ms and a hundred of 10 ms once it runs again,
 *   so the mean stays near 20 ms while every waiting request, probes included, was a second late.
 * - maxRequestsInFlight requests are admitted and unanswered. Unlike any sampled signal it holds
 *   from the first request of a storm: every admitted request's body will be parsed, validated
 *   and predicted on this one loop, so this bounds the work queued ahead of a probe.
 *
 * Shedding there costs almost nothing, so the requests still admitted are answered in time instead
 * of all of them late. The error goes through the route's own error handler, so the prediction
 * routes count it as outcome="overloaded". Measuring the delay starts when the app is ready:
 * compiling the schemas blocks the loop at start-up, and that is no overload.
 */
export function guardAgainstOverload(app: FastifyInstance, { maxEventLoopDelayMs, maxRequestsInFlight }: Bounds): void {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  let delayMs = 0;
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  const pressure = (): string | undefined => {
    if (maxEventLoopDelayMs > 0 && delayMs > maxEventLoopDelayMs) {
      return `the event loop stalled for ${Math.round(delayMs)} ms in the last second, above --max-event-loop-delay-ms ${maxEventLoopDelayMs}`;
    }
    if (maxRequestsInFlight > 0 && inFlight >= maxRequestsInFlight) {
      return `${inFlight} requests are in flight, the most --max-requests-in-flight allows`;
    }
    return undefined;
  };
  app.decorate('overload', {
    get delayMs() {
      return delayMs;
    },
    get inFlight() {
      return inFlight;
    },
    get pressure() {
      return pressure();
    },
    get shedding() {
      return pressure() !== undefined;
    },
  } satisfies OverloadGuard);
  app.addHook('onReady', async () => {
    histogram.enable();
    timer = setInterval(() => {
      // Each sample is how late one RESOLUTION_MS tick fired, the tick itself included.
      delayMs = histogram.count === 0 ? 0 : Math.max(0, histogram.max / 1e6 - RESOLUTION_MS);
      histogram.reset();
    }, SAMPLE_INTERVAL_MS).unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    histogram.disable();
  });
  if (maxEventLoopDelayMs === 0 && maxRequestsInFlight === 0) return;
  // 'close' comes once per response, answered or aborted, so the count cannot drift; on() rather
  // than once(), whose wrapper and removal cost more than the rest of the guard.
  const release = () => {
    inFlight--;
  };
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.config.answersUnderPressure) return done();
    const why = pressure();
    if (why !== undefined) {
      reply.header('retry-after', RETRY_AFTER_SECONDS);
      if (costlyToDrain(request.headers)) reply.header('connection', 'close');
      return done(new OverloadedError(why, RETRY_AFTER_SECONDS));
    }
    if (maxRequestsInFlight > 0) {
      inFlight++;
      reply.raw.on('close', release);
    }
    done();
  });
}
