import { json, newId, num, numOrNull, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// What alerting writes as it goes (migration 8): deliveries (one message to one target, with
// its attempts) and raised conditions (alert_state). Every change that decides "this server
// sends it" is one conditional UPDATE, so with several servers on one PostgreSQL exactly one
// of them wins: raising a condition, reminding of it, clearing it, and claiming a delivery.

export type DeliveryState = 'pending' | 'sending' | 'sent' | 'failed';

export interface Attempt {
  at: number;
  /** The HTTP status, or null when none came (a refused connection, SMTP). */
  status: number | null;
  error: string | null;
}

export interface DeliveryRow {
  id: string;
  target: string;
  channelId: string | null;
  siteId: string | null;
  eventKey: string;
  kind: string;
  recipients: string[];
  payload: unknown;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  history: Attempt[];
  createdAt: number;
  updatedAt: number;
}

/** A delivery to record: the row's own fields; state, attempts and times are the repository's. */
export type NewDelivery = Pick<DeliveryRow, 'target' | 'channelId' | 'siteId' | 'eventKey' | 'kind' | 'recipients' | 'payload'>;

const COLUMNS = 'id, target, channel_id, site_id, event_key, kind, recipients, payload, state, attempts, next_attempt_at, last_error, history, created_at, updated_at';

function toDelivery(r: Raw): DeliveryRow {
  return {
    id: str(r.id), target: str(r.target), channelId: strOrNull(r.channel_id), siteId: strOrNull(r.site_id), eventKey: str(r.event_key), kind: str(r.kind),
    recipients: json<string[]>(r.recipients, []), payload: json<unknown>(r.payload, null), state: r.state as DeliveryState, attempts: num(r.attempts),
    nextAttemptAt: num(r.next_attempt_at), lastError: strOrNull(r.last_error), history: json<Attempt[]>(r.history, []), createdAt: num(r.created_at), updatedAt: num(r.updated_at),
  };
}

/** How long a claimed delivery is this server's before another may take it over (a crash mid-send). */
export const SEND_LEASE_MS = 2 * 60_000;

export class AlertDeliveriesRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  /** The new delivery, or undefined when the target already has one for this event (recorded by another server). */
  async create(d: NewDelivery): Promise<DeliveryRow | undefined> {
    const now = this.#ctx.now();
    const row = await this.#ctx.db.get<Raw>(
      `INSERT INTO alert_deliveries (id, target, channel_id, site_id, event_key, kind, recipients, payload, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, event_key) DO NOTHING RETURNING ${COLUMNS}`,
      [newId(), d.target, d.channelId, d.siteId, d.eventKey, d.kind, JSON.stringify(d.recipients), JSON.stringify(d.payload), now, now, now],
    );
    return row && toDelivery(row);
  }

  /** Takes the delivery for one attempt if it is due and nobody holds it; undefined: not this server's. */
  async claim(id: string, now: number): Promise<DeliveryRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(
      `UPDATE alert_deliveries SET state = 'sending', lease_until = ?, attempts = attempts + 1, updated_at = ?
       WHERE id = ? AND ((state = 'pending' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until < ?)) RETURNING ${COLUMNS}`,
      [now + SEND_LEASE_MS, now, id, now, now],
    );
    return row && toDelivery(row);
  }

  /** Ids of deliveries due now (pending and due, or abandoned mid-send), oldest first. */
  async due(now: number, limit = 100): Promise<string[]> {
    const rows = await this.#ctx.db.query<Raw>(
      `SELECT id FROM alert_deliveries WHERE (state = 'pending' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until < ?) ORDER BY next_attempt_at LIMIT ?`,
      [now, now, limit],
    );
    return rows.map((r) => str(r.id));
  }

  /** Records the attempt: sent, or pending again at retryAt, or failed for good (retryAt null). */
  async settle(d: DeliveryRow, attempt: Attempt, retryAt: number | null | 'sent'): Promise<void> {
    const state: DeliveryState = retryAt === 'sent' ? 'sent' : retryAt === null ? 'failed' : 'pending';
    const history = [...d.history, attempt].slice(-20);
    await this.#ctx.db.exec(
      `UPDATE alert_deliveries SET state = ?, next_attempt_at = ?, lease_until = NULL, last_error = ?, history = ?, updated_at = ? WHERE id = ? AND state = 'sending'`,
      [state, typeof retryAt === 'number' ? retryAt : d.nextAttemptAt, attempt.error, JSON.stringify(history), attempt.at, d.id],
    );
  }

  /** Forgets deliveries that ended (sent or given up) before cutoff; returns how many. */
  async forgetEnded(cutoff: number): Promise<number> {
    return this.#ctx.db.exec(`DELETE FROM alert_deliveries WHERE state IN ('sent', 'failed') AND updated_at < ?`, [cutoff]);
  }

  async get(id: string): Promise<DeliveryRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM alert_deliveries WHERE id = ?`, [id]);
    return row && toDelivery(row);
  }

  /** A channel's log, newest first. */
  async forChannel(channelId: string, limit = 100): Promise<DeliveryRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM alert_deliveries WHERE channel_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, [channelId, limit])).map(toDelivery);
  }

  /** A site's ping log, newest first. */
  async forTarget(target: string, limit = 100): Promise<DeliveryRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM alert_deliveries WHERE target = ? ORDER BY created_at DESC, id DESC LIMIT ?`, [target, limit])).map(toDelivery);
  }

  /**
   * Raises the condition (subject, kind) unless it is raised already; true: this caller raised
   * it and tells. The row is made first (a no-op when it exists), then flipped by one
   * conditional UPDATE that only one caller on any server can win.
   */
  async raise(subject: string, kind: string, now: number, detail: unknown): Promise<boolean> {
    await this.#ctx.db.exec('INSERT INTO alert_state (subject, kind, active) VALUES (?, ?, 0) ON CONFLICT (subject, kind) DO NOTHING', [subject, kind]);
    const n = await this.#ctx.db.exec(
      'UPDATE alert_state SET active = 1, since = ?, notified_at = ?, detail = ? WHERE subject = ? AND kind = ? AND active = 0',
      [now, now, JSON.stringify(detail), subject, kind],
    );
    return n === 1;
  }

  /** Clears the condition; its raise time when this caller cleared it (and tells), else undefined. */
  async clear(subject: string, kind: string): Promise<number | undefined> {
    const row = await this.#ctx.db.get<Raw>('UPDATE alert_state SET active = 0 WHERE subject = ? AND kind = ? AND active = 1 RETURNING since', [subject, kind]);
    return row ? num(row.since) : undefined;
  }

  /** Raised conditions last told about before cutoff: reminders to claim. */
  async remindable(cutoff: number): Promise<{ subject: string; kind: string; since: number; notifiedAt: number; detail: unknown }[]> {
    const rows = await this.#ctx.db.query<Raw>('SELECT subject, kind, since, notified_at, detail FROM alert_state WHERE active = 1 AND notified_at <= ?', [cutoff]);
    return rows.map((r) => ({ subject: str(r.subject), kind: str(r.kind), since: num(r.since), notifiedAt: num(r.notified_at), detail: json<unknown>(r.detail, null) }));
  }

  /** Claims one reminder: true when this caller moved notified_at from the value it read. */
  async claimReminder(subject: string, kind: string, notifiedAt: number, now: number): Promise<boolean> {
    return (await this.#ctx.db.exec('UPDATE alert_state SET notified_at = ? WHERE subject = ? AND kind = ? AND active = 1 AND notified_at = ?', [now, subject, kind, notifiedAt])) === 1;
  }

  /** Raised conditions of one kind (e.g. every offline agent), with when they were raised. */
  async active(kind: string): Promise<{ subject: string; since: number }[]> {
    const rows = await this.#ctx.db.query<Raw>('SELECT subject, since FROM alert_state WHERE kind = ? AND active = 1', [kind]);
    return rows.map((r) => ({ subject: str(r.subject), since: numOrNull(r.since) ?? 0 }));
  }

  /** The raised conditions about these subjects. */
  async activeFor(subjects: string[]): Promise<{ subject: string; kind: string; since: number }[]> {
    if (subjects.length === 0) return [];
    const rows = await this.#ctx.db.query<Raw>(`SELECT subject, kind, since FROM alert_state WHERE active = 1 AND subject IN (${subjects.map(() => '?').join(', ')})`, subjects);
    return rows.map((r) => ({ subject: str(r.subject), kind: str(r.kind), since: num(r.since) }));
  }
}
