import type { FastifyInstance } from 'fastify';

// 405 with Allow for a known path asked with a method it does not take (404 stays for paths
// no route has). Fastify only knows "no route for this method and URL", so the routes' paths
// are kept here as patterns, and a request Fastify found no route for is matched against them
// on arrival (onRequest), before its body is read: a bad body does not turn a 405 into a 400.

interface PathMethods {
  pattern: RegExp;
  methods: Set<string>;
}

/** Fastify's route URL as a whole-path pattern: `:param` one segment, `*` the rest. */
function patternOf(url: string): RegExp {
  const source = url.split(/(:[A-Za-z0-9_]+|\*)/).map((part) => {
    if (part === '*') return '.*';
    if (part.startsWith(':')) return '[^/]+';
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${source.join('')}$`);
}

/** Call before any route is registered: it watches routes being added. */
export function answerMethodNotAllowed(app: FastifyInstance): void {
  const paths = new Map<string, PathMethods>();
  app.addHook('onRoute', (route) => {
    const entry = paths.get(route.url) ?? { pattern: patternOf(route.url), methods: new Set<string>() };
    for (const m of [route.method].flat()) entry.methods.add(m.toUpperCase());
    paths.set(route.url, entry);
  });
  app.addHook('onRequest', async (req, reply) => {
    if (!req.is404) return;
    const path = req.url.split('?')[0] ?? '';
    const allowed = new Set<string>();
    for (const { pattern, methods } of paths.values()) if (pattern.test(path)) for (const m of methods) allowed.add(m);
    if (allowed.size === 0) return;
    const allow = [...allowed].sort().join(', ');
    await reply
      .code(405)
      .header('allow', allow)
      .send({ error: { code: 'method_not_allowed', message: `${req.method} is not supported on ${path}; it takes ${allow}` } });
  });
}
