import type { FastifyInstance } from 'fastify';

/**
 * SIGTERM or SIGINT stops the server: no new connections, idle ones closed (Fastify's default
 * forceCloseConnections: 'idle'), requests in flight get `timeoutMs` to finish. A connection still
 * open then (a client that sent half a body and went quiet) is cut, so no client can hold the
 * process past the deadline its orchestrator counts on; the feature log is flushed either way and
 * the process exits 0, saying how many connections were cut. A second signal exits at once: an
 * operator pressing Ctrl-C again wants out.
 *
 * Node closes idle keep-alive connections once, when the close begins; a request in flight then
 * leaves its connection idle and open after its answer, and a client that sends nothing more on it
 * would hold the process to the deadline. So idle connections are closed again until the end.
 */
const IDLE_SWEEP_MS = 100;

export function stopOnSignals(app: FastifyInstance, timeoutMs: number): void {
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      app.log.warn({ signal }, 'second signal: exiting now, without waiting for requests or flushing the feature log');
      process.exit(1);
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
      clearTimeout(deadline);
      clearInterval(idleSweep);
    }
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, (s: NodeJS.Signals) => void stop(s));
}
