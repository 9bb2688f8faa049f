import type { FastifyInstance } from 'fastify';
import type { FeatureLog } from './monitor/feature-log.js';

/**
 * SIGTERM or SIGINT stops the server: no new connections, idle ones closed (Fastify's default
 * forceCloseConnections: 'idle'), requests in flight get `timeoutMs` to finish. A connection still
 * open then (a client that sent half a body and went quiet) is cut, so no client can hold the
 * process past the deadline its orchestrator counts on; the feature log is flushed either way and
 * the process exits 0, saying how many connections were cut. A second signal exits at once: an
 * operator pressing Ctrl-C again wants out. A feature log that cannot flush (its write stuck in the
 * kernel) does not hold the process either: FLUSH_GRACE_MS after the deadline it ends without it
 * (by SIGKILL, see exitNow).
 *
 * Node closes idle keep-alive connections once, when the close begins; a request in flight then
 * leaves its connection idle and open after its answer, and a client that sends nothing more on it
 * would hold the process to the deadline. So idle connections are closed again until the end.
 */
const IDLE_SWEEP_MS = 100;
/** How long after the deadline the feature log may take to flush before the process ends without it. */
export const FLUSH_GRACE_MS = 2000;

/**
 * How long the logger gets to write its last lines before a SIGKILL, which runs no exit handler:
 * pino writes asynchronously, and its flush() answers at once without waiting for the write.
 */
const LOG_WRITE_MS = 250;
const STUCK_FILE_TASK_MS = 100;

/**
 * process.exit waits for libuv's threads, so a feature-log write stuck in the kernel (a pipe no one
 * reads, a hung NFS mount) would hold it forever: then only SIGKILL ends the process, once the
 * log lines saying so are out.
 */
function exitNow(code: number, featureLog: FeatureLog | undefined): void {
  // A write of a healthy disk takes well under this; process.exit may wait for it.
  if ((featureLog?.fileTaskMs() ?? 0) < STUCK_FILE_TASK_MS) process.exit(code);
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), LOG_WRITE_MS);
}

export function stopOnSignals(app: FastifyInstance, timeoutMs: number): void {
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    const { featureLog } = app.watch;
    if (stopping) {
      app.log.warn({ signal, rowsUnwritten: featureLog?.rowsUnwritten ?? 0 }, 'second signal: exiting now, without waiting for requests or flushing the feature log');
      return exitNow(1, featureLog);
    }
    stopping = true;
    app.log.info({ signal, timeoutMs }, 'stopping: finishing in-flight requests and flushing the feature log');
    let cut: Promise<number> | undefined;
    const idleSweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS);
    const deadline = setTimeout(() => {
      cut = new Promise((resolve) =>
        app.server.getConnections((err, open) => {
          app.server.closeAllConnections();
          resolve(err ? 0 : open);
        }),
      );
    }, timeoutMs);
    const gaveUp = setTimeout(() => {
      app.log.error(
        { timeoutMs, graceMs: FLUSH_GRACE_MS, rowsUnwritten: featureLog?.rowsUnwritten ?? 0, fileTaskMs: Math.round(featureLog?.fileTaskMs() ?? 0) },
        `stopping: the feature log did not flush within ${FLUSH_GRACE_MS} ms after --shutdown-timeout-ms; exiting without it, its unwritten rows are lost`,
      );
      exitNow(1, featureLog);
    }, timeoutMs + FLUSH_GRACE_MS);
    try {
      await app.close();
      const connections = (await cut) ?? 0;
      app.log[connections > 0 ? 'warn' : 'info'](
        { connections, timeoutMs },
        `stopped: ${connections} connection${connections === 1 ? '' : 's'} still open after --shutdown-timeout-ms ${timeoutMs} cut`,
      );
      process.exitCode = 0;
    } catch (err) {
      app.log.error({ err }, 'shutdown failed');
      process.exitCode = 1;
    } finally {
      clearTimeout(gaveUp);
      clearTimeout(deadline);
      clearInterval(idleSweep);
    }
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, (s: NodeJS.Signals) => void stop(s));
}
