// Polls until fn returns something truthy, or fails naming what it waited for (plus any
// context, e.g. a child's output, that explains why it never came).

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, o: { ms?: number; every?: number; context?: () => string } = {}): Promise<T> {
  const end = Date.now() + (o.ms ?? 60_000);
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${o.context ? `\n${o.context()}` : ''}`);
    await new Promise((r) => setTimeout(r, o.every ?? 25));
  }
}
