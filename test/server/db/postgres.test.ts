import { dbSuite } from './suite.ts';
import { postgresTarget } from './targets.ts';

dbSuite('data layer on PostgreSQL', postgresTarget);
