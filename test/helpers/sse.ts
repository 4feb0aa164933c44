import { waitFor } from './wait.ts';

// Reads an event stream (GET .../backup/events) as text while a test acts on the server: wait for
// something to arrive, or for the server to end the stream, each within a bound.

export interface StreamReader {
  /** Everything received so far. */
  text(): string;
  /** Resolves once the text holds s; fails after ms. */
  saw(s: string, ms?: number): Promise<void>;
  /** Resolves with the whole text when the server ends the stream; fails after ms. */
  ended(ms?: number): Promise<string>;
  cancel(): void;
}

export async function openEvents(url: string, token: string): Promise<{ status: number; stream: StreamReader }> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  if (!res.body) throw new Error('no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const done = (async (): Promise<string> => {
    for (;;) {
      const r = await reader.read();
      if (r.done) return text;
      text += decoder.decode(r.value, { stream: true });
    }
  })();
  done.catch(() => undefined);
  const stream: StreamReader = {
    text: () => text,
    saw: async (s, ms = 10_000) => {
      await waitFor(`"${s}" on the event stream`, async () => text.includes(s), { ms, context: () => text });
    },
    ended: (ms = 10_000) => {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the event stream did not end within ${ms} ms; got:\n${text}`)), ms);
      });
      return Promise.race([done, bound]).finally(() => clearTimeout(timer));
    },
    cancel: () => ac.abort(),
  };
  return { status: res.status, stream };
}
