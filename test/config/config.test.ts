import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../src/config/config.js';

/** Without a client CA, the explicit choice to serve unauthenticated callers. */
const OPEN = ['--insecure-allow-unauthenticated-callers'];

describe('configuration', () => {
  it('has working defaults', () => {
    expect(loadConfig(OPEN, {})).toEqual({
      port: 8888,
      bindAddress: '0.0.0.0',
      zoneScore: 5,
      strict: false,
      maxBodyBytes: 16 * 2 ** 20,
      maxRequestMemoryBytes: 192 * 2 ** 20,
      allowedClientNames: [],
      webhookAllowedClientNames: [],
      insecureAllowUnauthenticatedCallers: true,
      logLevel: 'info',
      noCluster: false,
      schedulerHttpTimeoutMs: 5000,
      preemptMarginMs: 1000,
      preemptWaitMs: 0,
      publicationWaitMs: 180_000,
      defaultCheckpointPolicy: 'Never',
      resourceRules: [],
      hostCheckpointRate: 128 * 2 ** 20,
      gpuCheckpointRates: new Map([
        ['NVIDIA-H200', 1.46 * 2 ** 30],
        ['NVIDIA-H100-80GB-HBM3', 1.56 * 2 ** 30],
        ['*', 1.46 * 2 ** 30],
      ]),
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
      restoreClaimGraceMs: 90_000,
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
    const ok = loadConfig(
      [
        ...OPEN,
        '--restore-scheduler-names',
        ' default-scheduler=default-scheduler-restore, hiatus-scheduler=hiatus-scheduler-restore ',
      ],
      {},
    );
    expect([...ok.restoreSchedulers]).toEqual([
      ['default-scheduler', 'default-scheduler-restore'],
      ['hiatus-scheduler', 'hiatus-scheduler-restore'],
    ]);
    expect(loadConfig(OPEN, { HIATUS_RESTORE_SCHEDULER_NAMES: 'a=b' }).restoreSchedulers.get('a')).toBe('b');
    let problems: string[] = [];
    try {
      loadConfig([...OPEN, '--restore-scheduler-names', 'a=b,a=c,x,y=y,Big=z,p=q=r'], {});
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
    expect(loadConfig([...OPEN, '--restore-placement', 'score'], {}).restorePlacement).toBe('score');
    expect(loadConfig(OPEN, { HIATUS_RESTORE_PLACEMENT: 'gate' }).restorePlacement).toBe('gate');
    expect(() => loadConfig(['--restore-placement', 'pin'], {})).toThrow(
      '--restore-placement: "pin" must be one of nominate, gate, score',
    );
  });

  it('reads the environment and lets flags win', () => {
    const c = loadConfig([...OPEN, '--zone-score', '7', '--strict'], {
      HIATUS_ZONE_SCORE: '2',
      HIATUS_PORT: '9000',
      HIATUS_NO_CLUSTER: 'true',
    });
    expect(c).toMatchObject({ zoneScore: 7, strict: true, port: 9000, noCluster: true });
  });

  it('lists every problem at once', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig(
        [
          '--zone-score',
          '11',
          '--port',
          'http',
          '--tls-cert-file',
          'c.pem',
          '--log-level',
          'loud',
          '--max-body-bytes',
          '12',
        ],
        {},
      );
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    // Each option's own problem in the order --help lists the options, then those between options.
    expect(err!.problems).toEqual([
      '--port: "http" must be an integer from 0 to 65535',
      '--zone-score: "11" must be an integer from 0 to 10',
      '--max-body-bytes: "12" must be a byte size of at least 1024 (e.g. 16Mi)',
      '--log-level: "loud" must be one of debug, info, warn, error',
      '--tls-cert-file and --tls-key-file must be given together',
      '--client-ca-file is required: only kube-scheduler (extender tlsConfig.certFile/keyFile) with a certificate that CA signed may call this listener; to serve anyone who reaches it instead, say so with --insecure-allow-unauthenticated-callers',
    ]);
  });

  it('rejects a preempt margin that leaves no time to answer', () => {
    expect(() => loadConfig(['--scheduler-http-timeout', '2s', '--preempt-margin', '2500ms'], {})).toThrow(
      '--preempt-margin must be shorter than --scheduler-http-timeout',
    );
    expect(() => loadConfig(['--default-checkpoint-policy', 'Always'], {})).toThrow(
      'must be one of Required, BestEffort, Never',
    );
  });

  it('refuses a claim grace shorter than a create may still take: the claim would go to a second pod', () => {
    expect(() => loadConfig([...OPEN, '--restore-claim-grace', '30s'], {})).toThrow(
      '--restore-claim-grace must be at least 65s',
    );
    expect(loadConfig([...OPEN, '--restore-claim-grace', '65s'], {}).restoreClaimGraceMs).toBe(65_000);
  });

  it('caps --preempt-wait at the time preempt may take to answer', () => {
    const c = loadConfig(
      [...OPEN, '--scheduler-http-timeout', '3s', '--preempt-margin', '500ms', '--preempt-wait', '10s'],
      {},
    );
    expect(c.preemptWaitMs).toBe(2500);
    expect(loadConfig([...OPEN, '--preempt-wait', '0'], {}).preemptWaitMs).toBe(0);
  });

  it('checks options against each other only once each has parsed', () => {
    let problems: string[] = [];
    try {
      loadConfig([...OPEN, '--scheduler-http-timeout', 'soon', '--max-body-bytes', 'big'], {});
    } catch (e) {
      problems = (e as ConfigError).problems;
    }
    expect(problems).toEqual([
      '--max-body-bytes: "big" must be a byte size of at least 1024 (e.g. 16Mi)',
      '--scheduler-http-timeout: "soon" must be a positive duration such as 5s, 500ms or 10m',
    ]);
  });

  it('rejects unknown flags and non-boolean switches', () => {
    expect(() => loadConfig(['--colour'], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { HIATUS_STRICT: 'maybe' })).toThrow('--strict: "maybe" is not a boolean');
  });
});

describe('client authentication and request memory', () => {
  const problemsOf = (argv: string[]): string[] => {
    try {
      loadConfig(argv, {});
      return [];
    } catch (e) {
      return (e as ConfigError).problems;
    }
  };
  const TLS = ['--tls-cert-file', 't.crt', '--tls-key-file', 't.key'];
  const WEBHOOK_TLS = ['--webhook-tls-cert-file', 't.crt', '--webhook-tls-key-file', 't.key'];

  it('refuses to start without a client CA unless running unauthenticated is chosen explicitly', () => {
    expect(problemsOf(TLS)).toEqual([
      expect.stringMatching(/^--client-ca-file is required: .* --insecure-allow-unauthenticated-callers$/),
    ]);
    expect(
      loadConfig([...TLS, '--insecure-allow-unauthenticated-callers'], {}).insecureAllowUnauthenticatedCallers,
    ).toBe(true);
    expect(loadConfig(TLS, { HIATUS_CLIENT_CA_FILE: 'ca.crt' }).clientCaFile).toBe('ca.crt');
  });

  it('asks the webhook for its own CA once it is served', () => {
    expect(problemsOf([...TLS, '--client-ca-file', 'ca.crt', ...WEBHOOK_TLS])).toEqual([
      expect.stringMatching(/^--webhook-client-ca-file is required: only the API server/),
    ]);
    const c = loadConfig(
      [
        ...TLS,
        '--client-ca-file',
        'ca.crt',
        ...WEBHOOK_TLS,
        '--webhook-client-ca-file',
        'ca.crt',
        '--webhook-allowed-client-names',
        'kube-apiserver-webhook-client',
      ],
      {},
    );
    expect(c).toMatchObject({
      webhookClientCaFile: 'ca.crt',
      webhookAllowedClientNames: ['kube-apiserver-webhook-client'],
    });
  });

  it('reads allowed names as a comma-separated list', () => {
    const c = loadConfig(
      [...TLS, '--client-ca-file', 'ca.crt', '--allowed-client-names', ' system:kube-scheduler , hiatus-scheduler ,'],
      {},
    );
    expect(c.allowedClientNames).toEqual(['system:kube-scheduler', 'hiatus-scheduler']);
  });

  it('needs TLS for a client CA and a CA for allowed names', () => {
    expect(problemsOf(['--client-ca-file', 'ca.crt'])).toEqual([
      '--client-ca-file needs --tls-cert-file and --tls-key-file: client certificates are only sent over TLS',
    ]);
    expect(
      problemsOf([
        ...OPEN,
        '--allowed-client-names',
        'x',
        '--webhook-client-ca-file',
        'ca.crt',
        '--webhook-allowed-client-names',
        'y',
      ]),
    ).toEqual([
      '--allowed-client-names needs --client-ca-file: names are read from verified client certificates',
      '--webhook-client-ca-file needs --webhook-tls-cert-file and --webhook-tls-key-file: client certificates are only sent over TLS',
    ]);
  });

  it('keeps --max-request-memory large enough for one body of --max-body-bytes', () => {
    expect(
      loadConfig([...OPEN, '--max-body-bytes', '4Mi', '--max-request-memory', '20Mi'], {}).maxRequestMemoryBytes,
    ).toBe(20 * 2 ** 20);
    expect(problemsOf([...OPEN, '--max-body-bytes', '64Mi'])).toEqual([
      '--max-request-memory: "192Mi" cannot hold one body of --max-body-bytes: it must be at least 5 x --max-body-bytes',
    ]);
    expect(problemsOf([...OPEN, '--max-request-memory', 'lots'])).toEqual([
      '--max-request-memory: "lots" must be a byte size (e.g. 192Mi)',
    ]);
  });
});
