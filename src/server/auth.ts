// Who may call a listener: a client certificate from a configured CA, optionally with one of
// a list of names. The TLS handshake asks every client for a certificate but admits those
// without one (probes carry none); each route then decides. Mirrors kube-apiserver's
// --requestheader-client-ca-file / --requestheader-allowed-names (k8s.io/apiserver
// pkg/authentication/request/x509/x509.go: Verifier.verifySubject matches the CN), here also
// matching DNS subjectAltNames.
import type { PeerCertificate as TlsPeerCertificate, TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';

export interface CallerPolicy {
  /** Whom the listener expects, for messages: "kube-scheduler", "the API server". */
  expected: string;
  /** The flag that holds the CA, for messages. */
  caFlag: string;
  /** false: --insecure-allow-unauthenticated-callers, no certificate asked for. */
  required: boolean;
  /** A verified certificate must carry one of these as CN or DNS SAN; empty: any verified one. */
  allowedNames: readonly string[];
}

/** What the TLS handshake learnt about the client. */
export interface PeerCertificate {
  /** Whether the client sent a certificate at all. */
  presented: boolean;
  /** Whether it chains to the configured CA (and is valid for client authentication now). */
  verified: boolean;
  /** OpenSSL's reason when it does not, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
  error?: string;
  commonName?: string;
  dnsNames: string[];
}

export type RefusalReason = 'no_certificate' | 'untrusted_certificate' | 'name_not_allowed';

export type CallerDecision =
  { allowed: true; identity?: string } | { allowed: false; status: 401 | 403; reason: RefusalReason; message: string };

/** A policy that lets every caller in (an unauthenticated listener). */
export function openPolicy(expected: string): CallerPolicy {
  return { expected, caFlag: '', required: false, allowedNames: [] };
}

/** Pure: whether a caller with this certificate (undefined: plain HTTP) may use the route. */
export function decideCaller(peer: PeerCertificate | undefined, policy: CallerPolicy): CallerDecision {
  if (!policy.required) return { allowed: true };
  if (!peer?.presented) {
    return {
      allowed: false,
      status: 401,
      reason: 'no_certificate',
      message: `a client certificate is required: only ${policy.expected}, with a certificate signed by the CA of ${policy.caFlag}, may call this`,
    };
  }
  if (!peer.verified) {
    return {
      allowed: false,
      status: 401,
      reason: 'untrusted_certificate',
      message: `client certificate not accepted (${peer.error ?? 'not verified'}): it must be signed by the CA of ${policy.caFlag} and valid for client authentication`,
    };
  }
  const names = [...(peer.commonName ? [peer.commonName] : []), ...peer.dnsNames];
  if (policy.allowedNames.length === 0) return { allowed: true, identity: names[0] ?? '' };
  const match = names.find((n) => policy.allowedNames.includes(n));
  if (match !== undefined) return { allowed: true, identity: match };
  return {
    allowed: false,
    status: 403,
    reason: 'name_not_allowed',
    message: `client certificate ${names.length > 0 ? names.map((n) => `"${n}"`).join(', ') : 'without a name'} is not one of the names allowed to call this (${policy.allowedNames.join(', ')})`,
  };
}

/** The client certificate on a connection; undefined when it is not TLS. */
export function peerCertificate(socket: Socket): PeerCertificate | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== 'function') return undefined;
  // An empty object when the client sent none, null once the socket is destroyed (Node's tls
  // docs; @types/node has neither).
  const cert = tls.getPeerCertificate() as Partial<TlsPeerCertificate> | null;
  if (!cert || Object.keys(cert).length === 0) return { presented: false, verified: false, dnsNames: [] };
  const cn = cert.subject?.CN;
  // Node sets the verify error's code (a string) here, @types/node says an Error: both are read.
  const error = tls.authorizationError as Error | string | undefined;
  return {
    presented: true,
    verified: tls.authorized === true,
    ...(error ? { error: error instanceof Error ? error.message : error } : {}),
    ...(typeof cn === 'string' ? { commonName: cn } : Array.isArray(cn) ? { commonName: String(cn[0]) } : {}),
    dnsNames: dnsNamesOf(cert.subjectaltname),
  };
}

/** "DNS:a, IP Address:1.2.3.4, DNS:b" -> ["a", "b"]. */
function dnsNamesOf(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(', ')
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4));
}

/**
 * TLS server options that ask for a client certificate and verify it against ca, without
 * refusing the handshake when there is none or it does not verify: the route decides
 * (probes carry none) and can then answer why.
 */
export function clientCertificateOptions(ca: Buffer | undefined): {
  requestCert: boolean;
  rejectUnauthorized: boolean;
  ca?: Buffer;
} {
  if (!ca) return { requestCert: false, rejectUnauthorized: false };
  return { requestCert: true, rejectUnauthorized: false, ca };
}

/** "a, b ,c" -> ["a", "b", "c"]. */
export function parseNames(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
