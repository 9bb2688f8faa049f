import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { ServeConfig } from './config.js';
import type { Baseline } from './model/baseline.js';
import type { Answer, Prediction, SentRequest } from './model/model.js';
import { BucketCounts } from './monitor/buckets.js';
import { absErrorBuckets, type FeedbackOutcome } from './monitor/feedback.js';
import { withinFloat32 } from './monitor/float32.js';
import { familyBuilder, MergedRegistry, type Families, type Metrics } from './monitor/metrics.js';
import { RateLimitedWarn } from './monitor/rate-limited-log.js';
import { rowIds, type RecordedIds } from './request-ids.js';
import type { Watch } from './watch.js';

/** In canary mode, `primary` or `candidate`: the request goes where it says. */
export const ROUTE_HEADER = 'x-modelwatch-route';
/** In canary mode, a key (a user, a session) whose stable hash picks the version, so a key always gets the same one. */
export const KEY_HEADER = 'x-modelwatch-key';
/** Names the version that answered, on every prediction answer while two versions are served. */
export const VERSION_HEADER = 'x-modelwatch-version';

export type Role = 'primary' | 'candidate';
export const candidateOutcomes = ['ok', 'error', 'shed'] as const;
type CandidateOutcome = (typeof candidateOutcomes)[number];
const agreements = ['true', 'false'] as const;

/** Hash slots a canary percentage is cut into: 0.01 % steps. */
const SLOTS = 10_000;
/** FNV-1a: stable across processes and replicas, so every replica sends a key to the same version. */
function slotOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % SLOTS;
}

/**
 * Why `other` cannot stand beside or in place of `reference`: another model name, task, feature
 * list or class list would make the versions' series and answers incomparable, and the routes'
 * schemas are built once for one feature list. Undefined when it can.
 */
export function pairProblem(reference: Baseline, other: Baseline): string | undefined {
  if (other.model !== reference.model) return `its model is named ${JSON.stringify(other.model)}, the primary's ${JSON.stringify(reference.model)}`;
  const task = (b: Baseline) => b.task ?? 'regression';
  if (task(other) !== task(reference)) return `it is a ${task(other)} model, the primary a ${task(reference)}`;
  const names = (b: Baseline) => b.features.map((f) => f.name);
  const [mine, theirs] = [names(reference), names(other)];
  const at = mine.findIndex((name, i) => theirs[i] !== name);
  if (at >= 0 || theirs.length !== mine.length) {
    const where = at >= 0 ? at : mine.length;
    return `its features differ from the primary's at position ${where + 1}: ${JSON.stringify(theirs[where] ?? '(none)')} where the primary has ${JSON.stringify(mine[where] ?? '(none)')} (${theirs.length} features, the primary ${mine.length})`;
  }
  if (reference.task === 'classification' && other.task === 'classification' && other.classes.join('\n') !== reference.classes.join('\n')) {
    return `its classes are [${other.classes.join(', ')}], the primary's [${reference.classes.join(', ')}]`;
  }
  return undefined;
}

/**
 * What compares a candidate with the primary, for one pair of versions: its own series, labelled
 * with both versions, so a new pair starts them anew.
 */
class Comparison {
  readonly families: Families;
  readonly count: (outcome: CandidateOutcome) => void;
  private readonly absDiff: BucketCounts | undefined;
  private readonly agree: ((agree: (typeof agreements)[number]) => void) | undefined;

  constructor(primary: Baseline, candidate: Baseline) {
    const { families, enumCounter, histogram } = familyBuilder({ model: candidate.model, version: candidate.version, primary_version: primary.version });
    this.families = families;
    this.count = enumCounter('model_candidate_requests_total', 'Requests the candidate predicted, by outcome; shed: shadow work dropped with its queue full.', 'outcome', candidateOutcomes);
    if (primary.task === 'classification') {
      this.agree = enumCounter('model_candidate_agreement_total', 'Shadow rows by whether the candidate predicted the primary\'s class.', 'agree', agreements);
    } else {
      this.absDiff = new BucketCounts(absErrorBuckets(primary));
      histogram('model_candidate_abs_diff', 'abs(candidate - primary) per shadow row; buckets are multiples of the primary\'s baseline MAE.', this.absDiff);
    }
  }

  /** The two versions' answers to the same rows. */
  compare(primary: Answer, candidate: Answer, rows: number): void {
    if (primary.task === 'regression' && candidate.task === 'regression') {
      for (let r = 0; r < rows; r++) {
        const p = primary.values[r]!;
        const c = candidate.values[r]!;
        // Non-finite answers are outliers of their version already; one would poison the sum for good.
        if (withinFloat32(p) && withinFloat32(c)) this.absDiff!.observe(Math.abs(c - p));
      }
    } else if (primary.task === 'classification' && candidate.task === 'classification') {
      for (let r = 0; r < rows; r++) this.agree!(primary.labels[r] === candidate.labels[r] ? 'true' : 'false');
    }
  }
}

interface ShadowJob {
  values: Float64Array;
  rows: number;
  sent: SentRequest;
  answer: Answer;
  ids: RecordedIds;
  comparison: Comparison;
}

interface Versions {
  primary: Watch;
  candidate: Watch | undefined;
  comparison: Comparison | undefined;
}

/** How long a retired version may keep predicting for requests that chose it before the swap. */
const RETIRE_POLL_MS = 10;

/**
 * The versions served and what sits above them: which one answers a request, the shadow queue,
 * the comparison, and the swap of a reloaded version between requests. Routes talk to this, never
 * to a version chosen once: a reload replaces the Watch objects.
 */
export class Rollout {
  readonly registry: MergedRegistry;
  private versions: Versions;
  private readonly queue: ShadowJob[] = [];
  /** Row ids of the queued shadow work, and labels that came for them before the candidate predicted them. */
  private readonly queuedRows = new Set<string>();
  private readonly earlyLabels = new Map<string, number>();
  private draining = false;
  private closed = false;
  /** Predictions running per version: a retired version's model is closed once its count is 0. */
  private readonly running = new Map<Watch, number>();
  private readonly answeredBy = new WeakMap<object, Watch>();
  private readonly shadowFailures: RateLimitedWarn;

  constructor(
    private readonly config: ServeConfig,
    primary: Watch,
    candidate: Watch | undefined,
    log: FastifyBaseLogger,
    extra: readonly Families[],
  ) {
    this.versions = { primary, candidate, comparison: candidate && new Comparison(primary.baseline, candidate.baseline) };
    this.registry = new MergedRegistry(() => {
      const { primary: p, candidate: c, comparison } = this.versions;
      return [p.metrics.families, ...(c ? [c.metrics.families, comparison!.families] : []), ...extra];
    });
    this.shadowFailures = new RateLimitedWarn(log, config.outlierLogPerMinute);
  }

  get primary(): Watch {
    return this.versions.primary;
  }

  get candidate(): Watch | undefined {
    return this.versions.candidate;
  }

  /** The version that answers `request`: the primary, unless canary routing or a V2 version path picks the candidate. */
  choose(request: { headers: IncomingHttpHeaders }, version?: string): Watch {
    const { primary, candidate } = this.versions;
    if (!candidate) return primary;
    let picked = primary;
    if (version !== undefined) picked = version === candidate.baseline.version ? candidate : primary;
    else if (this.config.rollout === 'canary' && this.canaryPicks(request.headers)) picked = candidate;
    this.answeredBy.set(request, picked);
    return picked;
  }

  /** Where a failed request is counted: the version that was to answer it. */
  metricsFor(request: object): Metrics {
    return (this.answeredBy.get(request) ?? this.versions.primary).metrics;
  }

  private canaryPicks(headers: IncomingHttpHeaders): boolean {
    const route = headers[ROUTE_HEADER];
    if (route === 'primary' || route === 'candidate') return route === 'candidate';
    const key = headers[KEY_HEADER];
    const percent = this.config.canaryPercent;
    if (typeof key === 'string') return slotOf(key) < (percent / 100) * SLOTS;
    return Math.random() * 100 < percent;
  }

  /** `watch`'s model predicts; while it runs the version is not closed, whatever a reload swaps in meanwhile. */
  async predict(watch: Watch, values: Float64Array, rows: number, sent: SentRequest): Promise<Prediction> {
    this.running.set(watch, (this.running.get(watch) ?? 0) + 1);
    const comparison = watch === this.versions.candidate ? this.versions.comparison : undefined;
    try {
      const prediction = await watch.model.predict(values, rows, sent);
      comparison?.count('ok');
      return prediction;
    } catch (err) {
      comparison?.count('error');
      throw err;
    } finally {
      this.running.set(watch, this.running.get(watch)! - 1);
    }
  }

  /**
   * After the primary answered in shadow mode: the candidate's turn, once the answer is on its
   * way. A full queue sheds the candidate's work, never the client's.
   */
  shadow(watch: Watch, values: Float64Array, rows: number, sent: SentRequest, answer: Answer, ids: RecordedIds): void {
    const { primary, comparison } = this.versions;
    if (this.config.rollout !== 'shadow' || comparison === undefined || watch !== primary) return;
    if (this.queue.length >= this.config.shadowQueue) {
      comparison.count('shed');
      return;
    }
    this.queue.push({ values, rows, sent, answer, ids, comparison });
    for (const rowId of rowIds(ids)) this.queuedRows.add(rowId);
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => void this.drain());
  }

  /** One shadow prediction at a time: the candidate never takes more than one of the cores the primary answers on. */
  private async drain(): Promise<void> {
    for (let job = this.queue.shift(); job !== undefined && !this.closed; job = this.queue.shift()) {
      const { candidate, comparison } = this.versions;
      try {
        // Work queued for a pair a reload has since replaced compares nothing still exposed.
        if (candidate === undefined || job.comparison !== comparison) continue;
        const started = process.hrtime.bigint();
        const answer = await this.predict(candidate, job.values, job.rows, job.sent);
        candidate.metrics.observeInference(Number(process.hrtime.bigint() - started) / 1e9);
        candidate.record(job.values, answer, job.rows, job.ids, true);
        comparison.compare(job.answer, answer, job.rows);
        this.applyEarlyLabels(candidate, rowIds(job.ids));
      } catch (err) {
        this.shadowFailures.warn({ err, id: job.ids.requestId, version: candidate?.baseline.version }, 'the candidate failed a shadow prediction; the client had the primary\'s answer');
      } finally {
        for (const rowId of rowIds(job.ids)) {
          this.queuedRows.delete(rowId);
          this.earlyLabels.delete(rowId);
        }
      }
    }
    this.draining = false;
  }

  private applyEarlyLabels(candidate: Watch, rowIds: string[]): void {
    if (this.earlyLabels.size === 0) return;
    for (const rowId of rowIds) {
      const actual = this.earlyLabels.get(rowId);
      if (actual !== undefined) candidate.feedback.label(rowId, actual);
    }
  }

  /** Rows of queued shadow work, and labels held for them: both 0 once the queue is empty. */
  pendingShadowRows(): number {
    return this.queuedRows.size + this.earlyLabels.size;
  }

  /** Waits until the shadow queue is empty: tests and shutdown. */
  async settled(): Promise<void> {
    for (let i = 0; i < 1000 && (this.draining || this.queue.length > 0); i++) await new Promise((resolve) => setTimeout(resolve, RETIRE_POLL_MS));
  }

  /**
   * A label for a row id: every version that predicted the row (both, in shadow mode) gets it, so
   * each version's error is its own; the answer is the primary's when it knows the row.
   */
  label(rowId: string, actual: number): FeedbackOutcome {
    const { primary, candidate } = this.versions;
    if (candidate === undefined || !candidate.feedback.store.has(rowId)) {
      const outcome = primary.feedback.label(rowId, actual);
      // A label faster than the shadow prediction waits for it, so the candidate's error counts the same rows.
      if (outcome === 'matched' && this.queuedRows.has(rowId)) this.earlyLabels.set(rowId, actual);
      return outcome;
    }
    if (!primary.feedback.store.has(rowId)) return candidate.feedback.label(rowId, actual);
    const outcome = primary.feedback.label(rowId, actual);
    candidate.feedback.label(rowId, actual);
    return outcome;
  }

  /**
   * Swaps `next` in for the version of `role`, between two requests: one that chose the old version
   * finishes on it, and the old model closes once none runs (within --shutdown-timeout-ms).
   */
  async replace(role: Role, next: Watch): Promise<void> {
    const { primary, candidate } = this.versions;
    const old = role === 'primary' ? primary : candidate;
    const [p, c] = role === 'primary' ? [next, candidate] : [primary, next];
    this.versions = { primary: p, candidate: c, comparison: c && new Comparison(p.baseline, c.baseline) };
    this.registry.sync();
    if (old) await this.retire(old);
  }

  private async retire(watch: Watch): Promise<void> {
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    while ((this.running.get(watch) ?? 0) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, RETIRE_POLL_MS));
    this.running.delete(watch);
    await watch.close();
  }

  async close(): Promise<void> {
    await this.settled();
    this.closed = true;
    const { primary, candidate } = this.versions;
    await Promise.all([primary, ...(candidate ? [candidate] : [])].map((w) => this.retire(w)));
  }
}
