import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Where every alert's runbook_url points under its runbook_base: the repository's path of the file. */
export const RUNBOOK_PATH = '/prometheus/RUNBOOK.md';

/** Read once: the runbook of the version that runs, from the package (the image copies it too). */
const runbook = readFileSync(new URL(`../..${RUNBOOK_PATH}`, import.meta.url));

/**
 * GET /prometheus/RUNBOOK.md: the server serves its own runbook, so `runbook_base` may be the
 * server's URL and a page's link resolves for a team that never forked the repository. Public,
 * like the repository it comes from; it answers under pressure, as the probes do.
 */
export default async function runbookRoutes(app: FastifyInstance) {
  app.get(RUNBOOK_PATH, { config: { answersUnderPressure: true } }, async (_request, reply) => reply.type('text/markdown; charset=utf-8').send(runbook));
}
