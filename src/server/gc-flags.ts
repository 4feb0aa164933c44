import { setFlagsFromString } from 'node:v8';

// The server's young-generation collections run on its own thread only. By default V8 splits
// each scavenge between the main thread and helper threads, and the main thread waits for all
// of them: on a machine whose cores are busy (2 cores shared by the load generator, the
// database and other work in npm run bench:api) a helper that is not scheduled holds the
// server up, so scavenges that take under 1 ms alone took 30-90 ms (and every request in
// flight with them). A scavenge of the launcher's 2 MiB semi-space takes ~0.8 ms on one
// thread. V8 reads this flag at each scavenge, so setting it at start takes effect (measured
// with --trace-gc-nvp: background.scavenge.parallel drops to 0); major collections keep their
// concurrent marking.

/** Call once when `wpbackup server` starts, before the load comes. */
export function serialScavenges(): void {
  setFlagsFromString('--no-parallel-scavenge');
}
