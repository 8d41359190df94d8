// What `kubectl hiatus` prints, as its unit tests and the operator e2e scenario both expect it.

/** The header of `kubectl hiatus list -o wide`, column by column (with -A, NAMESPACE comes first). */
export const WIDE_LIST_COLUMNS = [
  'NAME',
  'PHASE',
  'POD',
  'NODE',
  'REASON',
  'SIZE',
  'PUBLISHED',
  'RESTORE',
  'AGE',
  'MEMORY',
  'CONTAINERS',
  'OWNER',
  'PREEMPTOR',
  'COMPLETED',
];
