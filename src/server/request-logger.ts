import type { FastifyBaseLogger } from 'fastify';

// Fastify gives every request a child of the server's logger whose bindings carry the request
// id. Making one is a pino child with the log's redaction applied to those bindings (a copy of
// them): ~5 µs and some garbage per request on the hottest routes, for a logger that, with
// request logs off (the default), only a failing request ever writes to. So the child is made
// when the request first logs, with the same bindings and options, and never otherwise.

type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
type Level = 'info' | 'error' | 'debug' | 'fatal' | 'warn' | 'trace' | 'silent';

class LazyChild {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  get #real(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): string {
    return this.#child?.level ?? this.#options?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real.level = level;
  }

  child(bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return this.#real.child(bindings, options);
  }

  info = this.#forward('info');
  error = this.#forward('error');
  debug = this.#forward('debug');
  fatal = this.#forward('fatal');
  warn = this.#forward('warn');
  trace = this.#forward('trace');
  silent = this.#forward('silent');

  #forward(level: Level): FastifyBaseLogger[Level] {
    return ((...args: unknown[]) => (this.#real[level] as (...a: unknown[]) => void)(...args)) as FastifyBaseLogger[Level];
  }
}

/** Fastify's childLoggerFactory: a request's logger, made on its first line. */
export function lazyRequestLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildOptions): FastifyBaseLogger {
  return new LazyChild(parent, bindings, options);
}
