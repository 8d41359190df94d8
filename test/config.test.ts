import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../src/config/config.js';

describe('configuration', () => {
  it('has working defaults', () => {
    expect(loadConfig([], {})).toEqual({
      port: 8888,
      bindAddress: '0.0.0.0',
      zoneScore: 5,
      strict: false,
      maxBodyBytes: 50 * 2 ** 20,
      logLevel: 'info',
      noCluster: false,
      schedulerHttpTimeoutMs: 5000,
      preemptMarginMs: 1000,
      defaultCheckpointPolicy: 'Never',
      resourceRules: [],
      kubeletAccess: 'direct',
      kubeletPort: 10250,
      kubeletInsecureTls: false,
      checkpointTimeoutSeconds: 300,
      checkpointMaxAgeMs: 600_000,
      checkpointRetryAfterMs: 300_000,
      maxConcurrentCheckpoints: 16,
      maxCheckpointsPerNode: 2,
      webhookPort: 8443,
      restoreTimeoutMs: 600_000,
      restoreClaimGraceMs: 30_000,
      restoreReconcileIntervalMs: 5_000,
      restoreSchedulers: new Map(),
      restorePlacement: 'nominate',
      retentionMaxPerWorkload: 3,
      retentionMaxAgeMs: 86_400_000,
      retentionConsumedTtlMs: 3_600_000,
      retentionIntervalMs: 60_000,
    });
  });

  it('reads --restore-scheduler-names as FROM=TO pairs and names every bad pair', () => {
    const ok = loadConfig(['--restore-scheduler-names', ' default-scheduler=default-scheduler-restore, hiatus-scheduler=hiatus-scheduler-restore '], {});
    expect([...ok.restoreSchedulers]).toEqual([
      ['default-scheduler', 'default-scheduler-restore'],
      ['hiatus-scheduler', 'hiatus-scheduler-restore'],
    ]);
    expect(loadConfig([], { HIATUS_RESTORE_SCHEDULER_NAMES: 'a=b' }).restoreSchedulers.get('a')).toBe('b');
    let problems: string[] = [];
    try {
      loadConfig(['--restore-scheduler-names', 'a=b,a=c,x,y=y,Big=z,p=q=r'], {});
    } catch (e) {
      problems = (e as ConfigError).problems;
    }
    expect(problems).toEqual([
      '--restore-scheduler-names: "a" is listed twice',
      '--restore-scheduler-names: "x" must be FROM=TO, two scheduler profile names (lower-case DNS subdomains)',
      '--restore-scheduler-names: "y=y" moves a profile to itself',
      '--restore-scheduler-names: "Big=z" must be FROM=TO, two scheduler profile names (lower-case DNS subdomains)',
      '--restore-scheduler-names: "p=q=r" must be FROM=TO, two scheduler profile names (lower-case DNS subdomains)',
    ]);
  });

  it('reads --restore-placement: nominate (default), gate or score, and refuses anything else', () => {
    expect(loadConfig(['--restore-placement', 'score'], {}).restorePlacement).toBe('score');
    expect(loadConfig([], { HIATUS_RESTORE_PLACEMENT: 'gate' }).restorePlacement).toBe('gate');
    expect(() => loadConfig(['--restore-placement', 'pin'], {})).toThrow('--restore-placement: "pin" must be nominate, gate or score');
  });

  it('reads the environment and lets flags win', () => {
    const c = loadConfig(['--zone-score', '7', '--strict'], { HIATUS_ZONE_SCORE: '2', HIATUS_PORT: '9000', HIATUS_NO_CLUSTER: 'true' });
    expect(c).toMatchObject({ zoneScore: 7, strict: true, port: 9000, noCluster: true });
  });

  it('lists every problem at once', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig(['--zone-score', '11', '--port', 'http', '--tls-cert-file', 'c.pem', '--log-level', 'loud', '--max-body-bytes', '12'], {});
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toEqual([
      '--max-body-bytes: "12" must be a byte size of at least 1024 (e.g. 50Mi)',
      '--log-level: "loud" must be one of debug, info, warn, error',
      '--port: "http" must be an integer from 0 to 65535',
      '--zone-score: "11" must be an integer from 0 to 10',
      '--tls-cert-file and --tls-key-file must be given together',
    ]);
  });

  it('rejects a preempt margin that leaves no time to answer', () => {
    expect(() => loadConfig(['--scheduler-http-timeout', '2s', '--preempt-margin', '2500ms'], {})).toThrow(
      '--preempt-margin must be shorter than --scheduler-http-timeout',
    );
    expect(() => loadConfig(['--default-checkpoint-policy', 'Always'], {})).toThrow('must be one of Required, BestEffort, Never');
  });

  it('rejects unknown flags and non-boolean switches', () => {
    expect(() => loadConfig(['--colour'], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { HIATUS_STRICT: 'maybe' })).toThrow('--strict: "maybe" is not a boolean');
  });
});
