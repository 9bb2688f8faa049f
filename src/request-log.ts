import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';

type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
type LogArgs = Parameters<FastifyBaseLogger['info']>;

/**
 * request.log, whose pino child is made only when the request logs. Fastify makes a child per
 * request, and pino serialises the child's bindings when it is made: about 1 us a request, more
 * than the feature log's row, for a logger that an accepted prediction never uses (per-request
 * log lines are off; only errors log). The methods live on the prototype, so a request costs one
 * small object.
 */
class DeferredChildLogger {
  private made: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildOptions,
  ) {}

  private get logger(): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }

  get level(): string {
    return this.made?.level ?? this.options?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger.level = level;
  }

  fatal(...args: LogArgs) {
    this.logger.fatal(...args);
  }

  error(...args: LogArgs) {
    this.logger.error(...args);
  }

  warn(...args: LogArgs) {
    this.logger.warn(...args);
  }

  info(...args: LogArgs) {
    this.logger.info(...args);
  }

  debug(...args: LogArgs) {
    this.logger.debug(...args);
  }

  trace(...args: LogArgs) {
    this.logger.trace(...args);
  }

  silent(...args: LogArgs) {
    this.logger.silent(...args);
  }

  child(bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options);
  }
}

export const deferredChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = (logger, bindings, options) =>
  new DeferredChildLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
