// How wpbackup runs the zstd program, for wp-content's stream and for the dump alike.
//
// Two worker threads with 1 MiB jobs. -T0 keeps two 8 MiB jobs in and out per core (54 MB on
// 2 cores, and more, with more CPU taken, on a big production server); 1 MiB jobs cost 0.3% of
// ratio on wp-content, 1.8% on a dump, and 12 MB. Workers rather than --single-thread even for
// the dump: zstd's I/O thread then reads while they compress, and the dump, the backup's long
// pole on a site whose media is stored as is, ended 1-2 s sooner on the default bench shape
// (300 MB dump, 2 GB media) for the same CPU.
export const ZSTD_THREADS: readonly string[] = ['-T2', '-B1M'];
