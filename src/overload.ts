import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
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
  /** Mean event-loop lag over the last whole second, ms; 0 until a second has passed since start-up. */
  readonly lagMs: number;
  /** True while routes not marked answersUnderPressure are answered 503. */
  readonly shedding: boolean;
}

const SAMPLE_INTERVAL_MS = 1000;
const RESOLUTION_MS = 10;
/** The lag is re-measured every second, so that is when a shed client may try again. */
const RETRY_AFTER_SECONDS = SAMPLE_INTERVAL_MS / 1000;

/**
 * While the mean event-loop lag of the last second is above `boundMs` (0: never), every route not
 * marked answersUnderPressure answers 503 with Retry-After before its body is read: shedding there
 * costs almost nothing, so the requests still admitted are answered in time instead of all of them
 * late. The error goes through the route's own error handler, so the prediction routes count it
 * as outcome="overloaded". Measuring starts when the app is ready: compiling the schemas blocks
 * the loop at start-up, and that is no overload (@fastify/under-pressure counts it, and so shed the
 * first second of a slow start).
 */
export function guardAgainstOverload(app: FastifyInstance, boundMs: number): void {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  let lagMs = 0;
  let timer: NodeJS.Timeout | undefined;
  app.decorate('overload', {
    get lagMs() {
      return lagMs;
    },
    get shedding() {
      return boundMs > 0 && lagMs > boundMs;
    },
  } satisfies OverloadGuard);
  app.addHook('onReady', async () => {
    histogram.enable();
    timer = setInterval(() => {
      // Each sample is how late one RESOLUTION_MS tick fired, the tick itself included.
      lagMs = histogram.count === 0 ? 0 : Math.max(0, histogram.mean / 1e6 - RESOLUTION_MS);
      histogram.reset();
    }, SAMPLE_INTERVAL_MS).unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    histogram.disable();
  });
  if (boundMs === 0) return;
  app.addHook('onRequest', (request, reply, done) => {
    if (lagMs <= boundMs || request.routeOptions.config.answersUnderPressure) return done();
    reply.header('retry-after', RETRY_AFTER_SECONDS);
    done(new OverloadedError(Math.round(lagMs), boundMs, RETRY_AFTER_SECONDS));
  });
}
