import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { ServeConfig } from './config.js';
import { VersionMismatchError } from './errors.js';
import { isCategorical, loadBaseline, type Baseline } from './model/baseline.js';
import { inProcess, type Model } from './model/model.js';
import { OnnxModel } from './model/session.js';
import { UpstreamModel } from './model/upstream.js';
import { familyBuilder, type Families } from './monitor/metrics.js';
import { pairProblem, type Role, type Rollout } from './rollout.js';
import type { Watch } from './watch.js';

export interface Version {
  baseline: Baseline;
  model: Model;
}

/**
 * Loads the baseline and the model of `dir`, with the warm-up prediction, so a bad pair fails
 * here: before any port opens at start-up, before the swap on a reload. A sidecar's model runs
 * upstream: only the baseline is read, and no model.onnx is needed; a sidecar's candidate is the
 * same with --candidate-upstream.
 */
export async function loadVersion(config: ServeConfig, role: Role, dir: string): Promise<Version> {
  const baseline = await loadBaseline(join(dir, 'baseline.json'));
  if (config.upstream !== '') return { baseline, model: new UpstreamModel(config, baseline, role === 'primary' ? config.upstream : config.candidateUpstream) };
  const onnx = await OnnxModel.load(join(dir, 'model.onnx'), {
    features: baseline.features.map((f) => ({ name: f.name, kind: f.kind ?? 'numeric', values: isCategorical(f) ? f.values : undefined, nullable: f.nullable })),
    task: baseline.task ?? 'regression',
    classes: baseline.task === 'classification' ? baseline.classes : undefined,
    source: 'the baseline',
    fix: 'rebuild baseline.json with "modelwatch baseline"',
  }, { coalesceRows: config.coalesceRows });
  return { baseline, model: inProcess(onnx) };
}

/** Why the candidate `candidate` cannot be served beside `primary`, or undefined. */
export function candidateProblem(primary: Baseline, candidate: Baseline): string | undefined {
  if (candidate.version === primary.version) return `its version ${JSON.stringify(candidate.version)} is the primary's too; the two versions' series would be one`;
  return pairProblem(primary, candidate);
}

export const reloadOutcomes = ['ok', 'failed'] as const;

/** model_reloads_total{role, outcome}, for the roles served. */
export function reloadCounter(model: string, roles: readonly Role[]) {
  const { families, register } = familyBuilder({ model });
  const counts = new Float64Array(roles.length * reloadOutcomes.length);
  const cells = roles.flatMap((role) => reloadOutcomes.map((outcome) => Object.freeze({ model, role, outcome })));
  register('model_reloads_total', 'New model.onnx and baseline.json pairs noticed in a model dir, by outcome: ok (swapped in) or failed (refused; the old version serves on).', 'counter', () =>
    cells.map((labels, i) => ({ sharedLabels: labels, value: counts[i]! })),
  );
  const count = (role: Role, outcome: (typeof reloadOutcomes)[number]) => {
    counts[roles.indexOf(role) * reloadOutcomes.length + reloadOutcomes.indexOf(outcome)]!++;
  };
  return { families: families as Families, count };
}

/** What a version's pair of files is now: a ConfigMap or volume swap changes the inode behind the path, a copy the time or size. */
async function pairSignature(config: ServeConfig, dir: string): Promise<string> {
  const files = config.upstream === '' ? ['model.onnx', 'baseline.json'] : ['baseline.json'];
  const parts = await Promise.all(
    files.map(async (file) => {
      try {
        const s = await stat(join(dir, file));
        return `${s.dev}:${s.ino}:${s.mtimeMs}:${s.size}`;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'unreadable';
      }
    }),
  );
  return parts.join('|');
}

export type WatchFactory = (role: Role, version: Version, primary: Baseline) => Watch;

/**
 * Hot reload: each model dir is checked every --reload-interval-ms (and on SIGUSR2); a changed
 * pair is loaded and warmed up beside the version serving, checked against it, and swapped in
 * between requests. A pair that fails to load or does not fit is refused and the old version
 * serves on; either way model_reloads_total counts it and the log says why.
 */
export class Reloader {
  private readonly dirs: { role: Role; dir: string }[];
  private readonly signatures = new Map<Role, string>();
  private checking: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: ServeConfig,
    private readonly rollout: Rollout,
    private readonly makeWatch: WatchFactory,
    private readonly count: (role: Role, outcome: (typeof reloadOutcomes)[number]) => void,
    private readonly log: FastifyBaseLogger,
  ) {
    this.dirs = [{ role: 'primary', dir: config.modelDir }, ...(config.candidateDir === '' ? [] : [{ role: 'candidate' as const, dir: config.candidateDir }])];
  }

  /** Notes the pairs serving now and starts polling (with a positive interval). */
  async start(intervalMs: number): Promise<void> {
    for (const { role, dir } of this.dirs) this.signatures.set(role, await pairSignature(this.config, dir));
    if (intervalMs > 0) this.timer = setInterval(() => void this.check(), intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Checks every dir once; a check asked for while one runs (SIGUSR2 during a poll) is that one. */
  check(): Promise<void> {
    this.checking ??= (async () => {
      for (const { role, dir } of this.dirs) await this.checkDir(role, dir);
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkDir(role: Role, dir: string): Promise<void> {
    const signature = await pairSignature(this.config, dir);
    if (signature === this.signatures.get(role)) return;
    // Remembered whatever comes of it: a refused pair is not retried until its files change again.
    this.signatures.set(role, signature);
    const serving = role === 'primary' ? this.rollout.primary : this.rollout.candidate!;
    let version: Version | undefined;
    let watch: Watch;
    try {
      version = await loadVersion(this.config, role, dir);
      const { primary, candidate } = this.rollout;
      const problem = role === 'primary' ? (candidate && candidate.baseline.version === version.baseline.version ? `its version ${JSON.stringify(version.baseline.version)} is the candidate's` : pairProblem(primary.baseline, version.baseline)) : candidateProblem(primary.baseline, version.baseline);
      if (problem) throw new VersionMismatchError(dir, problem);
      watch = this.makeWatch(role, version, primary.baseline);
    } catch (err) {
      await version?.model.close();
      this.count(role, 'failed');
      this.log.error({ err, role, dir, serving: serving.baseline.version }, `reload refused: version ${serving.baseline.version} keeps serving`);
      return;
    }
    this.count(role, 'ok');
    this.log.info({ role, dir, version: version.baseline.version, previous: serving.baseline.version, coalesceRows: version.model.coalesceRows }, `reload: version ${version.baseline.version} swapped in for ${serving.baseline.version}`);
    await this.rollout.replace(role, watch).catch((err: Error) => this.log.warn({ err, role, version: serving.baseline.version }, 'the version swapped out failed to close'));
    // The candidate's model_prediction_value takes the primary's bucket bounds, which a new
    // primary baseline moves: forgetting the candidate's signature reloads it, in this same
    // check (the candidate dir comes after the primary's), paired with the new primary.
    if (role === 'primary') this.signatures.delete('candidate');
  }
}
