// Days of the week as schedules name them, Sunday first (cron's 0). No dependencies: the CLI's
// help loads this.
export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];
