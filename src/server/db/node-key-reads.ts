import { CoalescedReads } from './coalesced-reads.ts';
import type { Raw, RepoContext } from './rows.ts';

// Agents' keys read together, on PostgreSQL (NodesRepo.findByKeyHashWithJob): a progress
// report whose node and job the authentication cache no longer holds (auth/auth-cache.ts: a
// second after the read that found them) reads both, and with 500 agents reporting that is
// a few hundred reads a second. One at a time they took every pooled connection whenever the
// database slowed for a moment (npm run bench:api: queries of 15-70 ms, up to 7 waiting for a
// connection), and each was its own statement for the database's CPU. Like the status reads
// and the progress writes (coalesced-reads.ts, report-batches.ts): a read goes at once while
// fewer than maxInFlight run, and those that arrive meanwhile go together in one statement.
// SQLite reads one at a time, as before: its statements run on this thread.

/** What the statement finds for one (key hash, job id): the node's columns and the job's, prefixed j_. */
export type KeyRow = Raw & { k: string };

const ROW = '(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT))';

export interface NodeKeyReadsOptions {
  /** Statements of this reader at once (the rest of the pool stays for other work). */
  maxInFlight: number;
  /** Keys in one statement at most. */
  maxBatch: number;
}

export class NodeKeyReads {
  readonly #reads: CoalescedReads<KeyRow>;

  /** select: the node and job columns (nodes.ts WITH_JOB's, over n and j). */
  constructor(ctx: RepoContext, select: string, o: NodeKeyReadsOptions) {
    this.#reads = new CoalescedReads<KeyRow>({
      ...o,
      idOf: (r) => r.k,
      load: (keys) => {
        const params = keys.flatMap((k) => [k, ...split(k)]);
        // LATERAL: each key finds its node through either unique index, as the single read does.
        return ctx.db.query<KeyRow>(`WITH v (k, key_hash, job_id) AS (VALUES ${keys.map(() => ROW).join(', ')})
          SELECT v.k, ${select} FROM v
          JOIN LATERAL (SELECT * FROM nodes WHERE node_key_hash = v.key_hash OR pending_key_hash = v.key_hash LIMIT 1) n ON TRUE
          LEFT JOIN jobs j ON j.id = v.job_id`, params);
      },
    });
  }

  /** The row WITH_JOB would find for (keyHash, jobId), or undefined when no node has the key. */
  get(keyHash: string, jobId: string): Promise<Raw | undefined> {
    return this.#reads.get(`${keyHash}\n${jobId}`);
  }
}

/** A key hash is hex (tokens.ts hashToken) and never holds a newline; a job id may hold anything. */
function split(k: string): [string, string] {
  const at = k.indexOf('\n');
  return [k.slice(0, at), k.slice(at + 1)];
}
