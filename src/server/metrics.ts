import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BACKUP_STATUSES, STAGES, type Stage } from '../api/formats.ts';
import type { Queryable } from './db/db.ts';
import type { JobRow } from './db/jobs.ts';
import { num, str, type Raw } from './db/rows.ts';

// The server's Prometheus metrics (GET /metrics, routes/metrics.ts), in a Registry of its own
// so several servers in one process never share a series. Two kinds:
// - events this process saw: backups that ended here (the job-ended hub), the stage timings
//   agents report with their finish, archive bytes, alerts sent. Counters and histograms, per
//   process, as Prometheus expects: sum them over the servers.
// - the fleet's state, read from the database at scrape time (one set of queries per scrape,
//   shared by the gauges' collect()), so every server behind one PostgreSQL reports the same:
//   sites by status, queue depth, running jobs, agents online, nodes by status, last success
//   per site, stored backups.

/** What the metrics read: the database, the clock, and the size of a job's archive. */
export interface MetricsSource {
  db: Queryable;
  now: () => number;
  /** The stored size of the completed backup a job made, if any. */
  archiveBytes(job: JobRow): Promise<number | undefined>;
  /** A node is online when it was heard from this recently. */
  onlineWindowMs: number;
}

export interface MetricsOptions {
  /** The bearer token GET /metrics takes (metrics-token.ts). */
  token: string;
  /** Node.js process metrics too (CPU, memory, event loop): `wpbackup server` turns them on. */
  processMetrics?: boolean;
}

/** The end state of a job as the spec's status word. */
const STATUS_OF: Record<string, string> = { done: 'completed', failed: 'failed', cancelled: 'stopped' };
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 28_800];
const PASS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Snapshot {
  sites: Map<string, number>;
  queued: number;
  running: number;
  nodes: Map<string, number>;
  online: number;
  lastSuccess: { id: string; name: string; at: number }[];
  stored: number;
  storedBytes: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  /** Alerts delivered, by channel (email, webhook, ping) and event (backup_failed, ...): the alerts code increments it. */
  readonly alertsSent: Counter<'channel' | 'event'>;
  private readonly backupsEnded: Counter<'status'>;
  private readonly uploadedBytes: Counter;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly backupSeconds: Histogram<'status'>;
  private readonly passSeconds: Histogram<'pass'>;
  private readonly src: MetricsSource;
  private scraping: Promise<Snapshot> | undefined;
  /** The bearer token GET /metrics takes on the API's address. */
  readonly token: string;

  constructor(src: MetricsSource, opts: MetricsOptions) {
    this.src = src;
    this.token = opts.token;
    const registers = [this.registry];
    this.backupsEnded = new Counter({ name: 'wpbackup_backups_total', help: 'Backups that ended on this server, by status (completed, failed, stopped)', labelNames: ['status'], registers });
    for (const status of ['completed', 'failed', 'stopped']) this.backupsEnded.inc({ status }, 0);
    this.uploadedBytes = new Counter({ name: 'wpbackup_uploaded_bytes_total', help: 'Bytes of the archives whose backup completed on this server', registers });
    this.stageSeconds = new Histogram({ name: 'wpbackup_backup_stage_duration_seconds', help: 'How long each stage of a backup took, as its agent measured it (stages that ended)', labelNames: ['stage'], buckets: DURATION_BUCKETS, registers });
    for (const stage of STAGES) this.stageSeconds.zero({ stage });
    this.backupSeconds = new Histogram({ name: 'wpbackup_backup_duration_seconds', help: 'Backups from queued to ended, by status', labelNames: ['status'], buckets: DURATION_BUCKETS, registers });
    this.passSeconds = new Histogram({ name: 'wpbackup_pass_duration_seconds', help: 'Background passes of this server (reaper, scheduler, alerts, deletion_retry): how long each took', labelNames: ['pass'], buckets: PASS_BUCKETS, registers });
    this.alertsSent = new Counter({ name: 'wpbackup_alerts_sent_total', help: 'Alerts sent by this server, by channel and event', labelNames: ['channel', 'event'], registers });
    this.fleetGauges(registers);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The text exposition of every series; the database is read once for all the gauges. */
  async scrape(): Promise<string> {
    this.scraping = this.load();
    try {
      await this.scraping;
      return await this.registry.metrics();
    } finally {
      this.scraping = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** A job that ended in this process (subscribed to ctx.jobEnded). */
  async jobEnded(job: JobRow): Promise<void> {
    if (job.type !== 'backup') return;
    const status = STATUS_OF[job.state];
    if (!status) return;
    this.backupsEnded.inc({ status });
    this.backupSeconds.observe({ status }, Math.max(0, job.updatedAt - job.createdAt) / 1000);
    if (job.state === 'done') {
      const bytes = await this.src.archiveBytes(job);
      if (bytes) this.uploadedBytes.inc(bytes);
    }
  }

  /** The stage timings an agent sent with its finish report (seconds per stage that ended). */
  stagesReported(seconds: Partial<Record<Stage, number>> | undefined): void {
    for (const stage of STAGES) {
      const s = seconds?.[stage];
      if (s !== undefined && Number.isFinite(s) && s >= 0) this.stageSeconds.observe({ stage }, s);
    }
  }

  /** A background pass (periodic.ts) ended, well or not, after ms. */
  passRan(pass: string, ms: number): void {
    this.passSeconds.observe({ pass }, ms / 1000);
  }

  /** The same as alertsSent.inc({ channel, event }). */
  alertSent(channel: string, event: string): void {
    this.alertsSent.inc({ channel, event });
  }

  private fleetGauges(registers: Registry[]): void {
    const snap = (): Promise<Snapshot> => this.scraping ?? this.load();
    new Gauge({
      name: 'wpbackup_sites', help: 'Sites by the status of their last or current backup', labelNames: ['status'], registers,
      async collect() {
        const s = await snap();
        for (const status of BACKUP_STATUSES) this.set({ status }, s.sites.get(status) ?? 0);
      },
    });
    const single = (name: string, help: string, pick: (s: Snapshot) => number): void => {
      new Gauge({
        name, help, registers,
        async collect() {
          this.set(pick(await snap()));
        },
      });
    };
    single('wpbackup_queue_depth', 'Jobs queued and not yet claimed by an agent', (s) => s.queued);
    single('wpbackup_jobs_running', 'Jobs an agent holds (claimed or running)', (s) => s.running);
    single('wpbackup_agents_online', 'Active nodes whose agent was heard from within the online window', (s) => s.online);
    single('wpbackup_backups_stored', 'Completed backups in storage', (s) => s.stored);
    single('wpbackup_backups_stored_bytes', 'Bytes of the completed backups in storage', (s) => s.storedBytes);
    new Gauge({
      name: 'wpbackup_nodes', help: 'Nodes by status (pending, active, disabled)', labelNames: ['status'], registers,
      async collect() {
        const s = await snap();
        for (const status of ['pending', 'active', 'disabled']) this.set({ status }, s.nodes.get(status) ?? 0);
      },
    });
    new Gauge({
      name: 'wpbackup_site_last_success_timestamp_seconds', help: 'When the last completed backup of each site ended (Unix time); sites without one have no series', labelNames: ['site_id', 'site_name'], registers,
      async collect() {
        const s = await snap();
        this.reset();
        for (const site of s.lastSuccess) this.set({ site_id: site.id, site_name: site.name }, site.at / 1000);
      },
    });
  }

  private async load(): Promise<Snapshot> {
    const db = this.src.db;
    const since = this.src.now() - this.src.onlineWindowMs;
    const [sites, jobs, nodes, last, stored] = await Promise.all([
      db.query<Raw>('SELECT status, COUNT(*) AS n FROM sites GROUP BY status'),
      db.query<Raw>(`SELECT state, COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'claimed', 'running') GROUP BY state`),
      db.query<Raw>(`SELECT status, COUNT(*) AS n, COUNT(CASE WHEN status = 'active' AND last_seen >= ? THEN 1 END) AS online FROM nodes GROUP BY status`, [since]),
      db.query<Raw>(`SELECT s.id, s.name, MAX(j.updated_at) AS at FROM jobs j JOIN sites s ON s.id = j.site_id WHERE j.type = 'backup' AND j.state = 'done' GROUP BY s.id, s.name`),
      db.get<Raw>(`SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM backups WHERE status = 'completed'`),
    ]);
    const counts = (rows: Raw[], key: string): Map<string, number> => new Map(rows.map((r) => [str(r[key]), num(r.n)]));
    const jobCounts = counts(jobs, 'state');
    return {
      sites: counts(sites, 'status'),
      queued: jobCounts.get('queued') ?? 0,
      running: (jobCounts.get('claimed') ?? 0) + (jobCounts.get('running') ?? 0),
      nodes: counts(nodes, 'status'),
      online: nodes.reduce((n, r) => n + num(r.online), 0),
      lastSuccess: last.map((r) => ({ id: str(r.id), name: str(r.name), at: num(r.at) })),
      stored: num(stored?.n ?? 0),
      storedBytes: num(stored?.bytes ?? 0),
    };
  }
}
