import { num, str, strOrNull } from './rows.ts';
import type { Raw, RepoContext } from './rows.ts';

// What each node's agent last found on disk (POST /api/v1/agent/scan): WordPress roots with
// what their wp-config.php says, minus any password. A scan replaces the node's whole list.

export interface DiscoveredSite {
  path: string;
  name: string;
  dbName: string | null;
  tablePrefix: string | null;
  wpVersion: string | null;
  /** Why the agent could not read the site's settings. */
  error: string | null;
}

export interface DiscoveredSiteRow extends DiscoveredSite {
  nodeId: string;
  seenAt: number;
}

const COLUMNS = 'node_id, path, name, db_name, table_prefix, wp_version, error, seen_at';

function toRow(r: Raw): DiscoveredSiteRow {
  return {
    nodeId: str(r.node_id),
    path: str(r.path),
    name: str(r.name),
    dbName: strOrNull(r.db_name),
    tablePrefix: strOrNull(r.table_prefix),
    wpVersion: strOrNull(r.wp_version),
    error: strOrNull(r.error),
    seenAt: num(r.seen_at),
  };
}

export class DiscoveredSitesRepo {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  /** The node's list becomes exactly sites, in one transaction. Duplicate paths: the last wins. */
  async replaceForNode(nodeId: string, sites: DiscoveredSite[]): Promise<number> {
    const now = this.#ctx.now();
    const byPath = new Map(sites.map((s) => [s.path, s]));
    return this.#ctx.db.transaction(async (tx) => {
      await tx.exec('DELETE FROM discovered_sites WHERE node_id = ?', [nodeId]);
      for (const s of byPath.values()) {
        await tx.exec(
          `INSERT INTO discovered_sites (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [nodeId, s.path, s.name, s.dbName, s.tablePrefix, s.wpVersion, s.error, now],
        );
      }
      return byPath.size;
    });
  }

  async listForNode(nodeId: string): Promise<DiscoveredSiteRow[]> {
    return (await this.#ctx.db.query<Raw>(`SELECT ${COLUMNS} FROM discovered_sites WHERE node_id = ? ORDER BY path`, [nodeId])).map(toRow);
  }

  async get(nodeId: string, path: string): Promise<DiscoveredSiteRow | undefined> {
    const row = await this.#ctx.db.get<Raw>(`SELECT ${COLUMNS} FROM discovered_sites WHERE node_id = ? AND path = ?`, [nodeId, path]);
    return row && toRow(row);
  }
}
